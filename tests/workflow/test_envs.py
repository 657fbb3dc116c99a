import re
import tomllib

import pytest
import yaml

from tests.conftest import ROOT

ENV_FILES = sorted((ROOT / "envs").glob("*.yaml"))


def locked_versions() -> dict[str, set[str]]:
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    versions: dict[str, set[str]] = {}
    for package in lock["package"]:
        versions.setdefault(package["name"], set()).add(package["version"])
    return versions


def pins(env_file) -> dict[str, str]:
    dependencies = yaml.safe_load(env_file.read_text())["dependencies"]
    pip = next(d["pip"] for d in dependencies if isinstance(d, dict))
    return dict(re.fullmatch(r"([\w.-]+)==(\S+)", line).groups() for line in pip)


def test_there_is_an_env_per_rule_group():
    assert [p.stem for p in ENV_FILES] == ["data", "report", "train"]


@pytest.mark.parametrize("env_file", ENV_FILES, ids=lambda p: p.stem)
def test_env_pins_match_the_lock(env_file):
    locked = locked_versions()
    for name, version in pins(env_file).items():
        assert name in locked, f"{env_file.name}: {name} is not in uv.lock"
        assert version in locked[name], f"{env_file.name}: {name}=={version}, lock {locked[name]}"
