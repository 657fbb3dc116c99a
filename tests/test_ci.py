"""Under CI=true a test whose system package is missing fails instead of skipping."""

from __future__ import annotations

import subprocess

import pytest

from tests.conftest import ROOT, unavailable


def test_a_missing_package_skips_on_a_workstation_and_fails_in_ci(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception):
        unavailable("no Slurm")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true, but no Slurm"):
        unavailable("no Slurm")


def test_the_ci_script_stops_when_ci_cannot_install_a_package():
    # .ci/run's `missing`, run on its own: exit 1 under CI=true, a warning otherwise.
    script = (ROOT / ".ci/run").read_text()
    function = script[script.index("missing() {") : script.index("\n}\n") + 3]
    for ci, code in (("true", 1), ("", 0)):
        result = subprocess.run(
            ["bash", "-c", f"{function}\nmissing Slurm"],
            env={"CI": ci, "PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
        )
        assert result.returncode == code and "Slurm" in result.stderr
