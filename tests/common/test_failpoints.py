"""The stall failpoint: the first process to reach it waits until killed, later ones go on."""

from __future__ import annotations

import subprocess
import sys

from simtrain.common.failpoints import STALL_VARIABLE, failpoint

STALL = "from simtrain.common.failpoints import failpoint; failpoint('point'); print('passed')"


def test_the_first_process_stalls_and_a_retry_goes_on(tmp_path, monkeypatch):
    marker = tmp_path / "stalled"
    env = {STALL_VARIABLE: f"point@{marker}"}
    first = subprocess.Popen([sys.executable, "-c", STALL], env=env, stdout=subprocess.PIPE)
    try:
        first.wait(timeout=3)
        raise AssertionError("the first process went on")
    except subprocess.TimeoutExpired:
        first.kill()
        first.wait()
    assert marker.exists()
    retry = subprocess.run([sys.executable, "-c", STALL], env=env, capture_output=True, text=True)
    assert retry.stdout == "passed\n"
    monkeypatch.setenv(STALL_VARIABLE, f"other@{tmp_path / 'never'}")
    failpoint("point")  # not the armed point: returns at once
    assert not (tmp_path / "never").exists()
