"""Each benchmark records its results as one ``## <title>`` section of bench/README.md."""

from __future__ import annotations

from pathlib import Path


def write_section(readme: Path, section: str) -> None:
    """Replace the section that starts with ``section``'s first line (a ``## `` heading) up to the
    next ``## `` heading, or append it when the README has none yet."""
    text = readme.read_text(encoding="utf-8") if readme.exists() else "# Benchmarks\n"
    head = section.split("\n", 1)[0].strip()
    lines = text.split("\n")
    block = [*section.rstrip("\n").split("\n"), ""]
    start = next((i for i, line in enumerate(lines) if line.strip() == head), None)
    if start is None:
        if lines and lines[-1] != "":
            lines.append("")
        lines.extend(block)
    else:
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
        lines[start:end] = block
    readme.write_text("\n".join(lines).rstrip("\n") + "\n", encoding="utf-8")
