"""Failpoints: named places where the fault-injection tests kill the whole workflow, or stall
a job until its scheduler kills it.

Inert unless SIMTRAIN_FAILPOINT or SIMTRAIN_STALL names the point (set only by tests), so
production runs pay two dictionary lookups per call.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

ENVIRONMENT_VARIABLE = "SIMTRAIN_FAILPOINT"
# "<point>@<marker file>": the first process to reach the point creates the marker and waits
# until it is killed (a cluster job over its time limit); later ones, a retry, go on.
STALL_VARIABLE = "SIMTRAIN_STALL"


def failpoint(name: str) -> None:
    """SIGKILL this process group (Snakemake and all its jobs) if the test armed `name`;
    stall here if the test asked for it and no process has stalled here yet."""
    if os.environ.get(ENVIRONMENT_VARIABLE) == name:
        os.killpg(os.getpgrp(), signal.SIGKILL)
    point, _, marker = os.environ.get(STALL_VARIABLE, "").partition("@")
    if point == name and marker:
        try:
            Path(marker).touch(exist_ok=False)
        except FileExistsError:
            return
        while True:
            time.sleep(60)
