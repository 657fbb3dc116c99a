"""Failpoints: named places where the fault-injection tests kill the whole workflow.

Inert unless SIMTRAIN_FAILPOINT names the point (set only by tests/reliability), so
production runs pay one dictionary lookup per call.
"""

from __future__ import annotations

import os
import signal

ENVIRONMENT_VARIABLE = "SIMTRAIN_FAILPOINT"


def failpoint(name: str) -> None:
    """SIGKILL this process group (Snakemake and all its jobs) if the test armed `name`."""
    if os.environ.get(ENVIRONMENT_VARIABLE) == name:
        os.killpg(os.getpgrp(), signal.SIGKILL)
