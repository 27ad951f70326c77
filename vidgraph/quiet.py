"""Keep the console for what matters: framework notices are filtered by category, not globally.

Called once at CLI start (``vidgraph.cli.main``). Dagster's ``PreviewWarning``, ``BetaWarning``
and ``SupersessionWarning`` (features vidgraph uses on purpose, e.g. partitioned asset checks)
are ignored; every other warning still shows. Model-loading progress bars (Hugging Face hub and
transformers read ``HF_HUB_DISABLE_PROGRESS_BARS`` at import) are turned off unless the user set
the variable. ``VIDGRAPH_SHOW_WARNINGS=1`` leaves everything as it is.
"""

from __future__ import annotations

import os
import sys
import warnings

SHOW_ENV = "VIDGRAPH_SHOW_WARNINGS"


def quiet_models() -> None:
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    if "transformers" in sys.modules:  # already imported: its bar switch was read at import
        from transformers.utils import logging as tlog

        tlog.disable_progress_bar()


def quiet_dagster() -> None:
    """Ignore Dagster's preview/beta/supersession notices (importing Dagster takes a second or two)."""
    from dagster import BetaWarning, PreviewWarning, SupersessionWarning

    for category in (PreviewWarning, BetaWarning, SupersessionWarning):
        warnings.filterwarnings("ignore", category=category)


def quiet_cli(uses_dagster: bool = True) -> None:
    if os.environ.get(SHOW_ENV, "") not in ("", "0"):
        return
    quiet_models()
    if uses_dagster:
        quiet_dagster()
