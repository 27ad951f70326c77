"""Progress a person can watch: one log line per video with its throughput, and bars on a terminal.

Stages (pure logic, no Dagster) call :func:`video_done` after each video; the lines go to the
``vidgraph.progress`` logger. Dagster shows them in the run view because ``dagster.yaml`` lists
``vidgraph`` under ``python_logs.managed_python_loggers``; the CLI prints them (see
:func:`configure_cli_logging`). :func:`iterate` wraps a loop in a ``tqdm`` bar when stderr is a
terminal and logs plain lines otherwise (CI logs, pipes).
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")
log = logging.getLogger("vidgraph.progress")


def throughput(frames: int, media_s: float, wall_s: float) -> str:
    """``"1440 frames in 3.2 s: 450 frames/s, 18.7x real time"`` (the speed parts need a wall time)."""
    wall_s = max(wall_s, 1e-6)
    parts = [f"{frames} frames in {wall_s:.1f} s", f"{frames / wall_s:.0f} frames/s"]
    if media_s > 0:
        parts.append(f"{media_s / wall_s:.1f}x real time")
    return parts[0] + ": " + ", ".join(parts[1:])


def video_done(stage: str, video: str, frames: int, media_s: float, started: float, detail: str = "") -> str:
    """Log one finished video of ``stage``; ``started`` is a ``time.monotonic()`` taken before it."""
    line = f"{stage}: {video}: {throughput(int(frames), float(media_s or 0.0), time.monotonic() - started)}"
    if detail:
        line += f" ({detail})"
    log.info(line)
    return line


def stage_done(stage: str, what: str, count: int, unit: str, media_s: float, started: float) -> str:
    """One line for a step that works on many items at once (clips judged, clips captioned)."""
    wall = max(time.monotonic() - started, 1e-6)
    line = f"{stage}: {what}: {count} {unit} in {wall:.1f} s: {count / wall:.1f} {unit}/s"
    if media_s > 0:
        line += f", {media_s / wall:.1f}x real time ({media_s:.0f} s of video)"
    log.info(line)
    return line


def _is_terminal(stream=None) -> bool:
    stream = stream or sys.stderr
    return bool(getattr(stream, "isatty", lambda: False)())


def iterate(items: Iterable[T], desc: str, total: int | None = None) -> Iterator[T]:
    """A tqdm bar on a terminal; otherwise a plain ``desc: i/n`` line per item."""
    items = list(items) if total is None and not hasattr(items, "__len__") else items
    total = total if total is not None else len(items)  # type: ignore[arg-type]
    if _is_terminal():
        from tqdm import tqdm

        yield from tqdm(items, desc=desc, total=total, unit=desc.split()[-1] if desc else "it", file=sys.stderr)
        return
    for i, item in enumerate(items, 1):
        log.info(f"{desc}: {i}/{total}")
        yield item


class _TqdmSafeHandler(logging.StreamHandler):
    """Prints through tqdm.write on a terminal, so lines do not tear an open bar.

    The stream is looked up at each emit (``sys.stderr`` now, not when the handler was made): an
    in-process CLI call under a test runner must not keep writing to a stream closed since."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):  # StreamHandler.__init__ assigns it; the current stderr is always used
        pass

    def emit(self, record):
        if _is_terminal(self.stream):
            try:
                from tqdm import tqdm

                tqdm.write(self.format(record), file=self.stream)
                return
            except Exception:  # noqa: BLE001 - fall back to a plain line
                pass
        super().emit(record)


def configure_cli_logging(level: int = logging.INFO) -> None:
    """Send ``vidgraph`` log lines to stderr (once), for the CLI."""
    logger = logging.getLogger("vidgraph")
    if any(isinstance(h, _TqdmSafeHandler) for h in logger.handlers):
        return
    handler = _TqdmSafeHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    logger.setLevel(level)
