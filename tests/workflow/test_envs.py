"""The conda envs: generated from uv.lock, and sufficient to run their rules' scripts."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest
import yaml

from tests.conftest import ROOT

ENV_FILES = sorted((ROOT / "envs").glob("*.yaml"))
UV = os.environ.get("UV") or shutil.which("uv")


def pip_section(env_file) -> list[str]:
    dependencies = yaml.safe_load(env_file.read_text())["dependencies"]
    return next(d["pip"] for d in dependencies if isinstance(d, dict))


def test_there_is_an_env_per_rule_group_and_a_gpu_variant():
    assert {p.stem for p in ENV_FILES} == {"data", "report", "train", "train-gpu"}


@pytest.mark.skipif(UV is None, reason="needs uv to export the lock")
def test_every_env_file_equals_a_fresh_export_of_the_lock():
    result = subprocess.run(
        [sys.executable, ROOT / "envs/generate.py", "--check"],
        capture_output=True,
        text=True,
        env={**os.environ, "UV": UV},
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("env_file", ENV_FILES, ids=lambda p: p.stem)
def test_every_package_is_pinned(env_file):
    for line in pip_section(env_file):
        assert "==" in line.split(";")[0], f"{env_file.name}: {line} is not pinned"


def test_the_gpu_env_is_the_train_env_plus_cuda():
    cpu = set(pip_section(ROOT / "envs/train.yaml"))
    gpu = set(pip_section(ROOT / "envs/train-gpu.yaml"))
    assert cpu < gpu
    assert any(line.startswith("nvidia-") for line in gpu - cpu)


# Stands in for Snakemake's script preamble (which would append the parent interpreter's
# sys.path): gives the script its `snakemake` object and runs it, nothing else.
RUNNER = textwrap.dedent(
    """
    import builtins, json, runpy, sys, types

    class Io(list):
        def __init__(self, positional, named):
            super().__init__(positional + list(named.values()))
            self.__dict__.update(named)

    job = json.loads(sys.argv[1])
    builtins.snakemake = types.SimpleNamespace(
        input=Io(*job["input"]),
        output=Io(*job["output"]),
        params=types.SimpleNamespace(**job["params"]),
        wildcards=types.SimpleNamespace(**job["wildcards"]),
        log=[job["log"]],
        threads=1,
        config={},
        scriptdir=job["scriptdir"],
    )
    runpy.run_path(job["script"], run_name="__main__")
    import numpy, simtrain  # where they came from; stdout now goes to the job's log
    found = {"simtrain": simtrain.__file__, "numpy": numpy.__file__, "path": sys.path}
    open(job["found"], "w").write(json.dumps(found))
    """
)


@pytest.mark.slow
@pytest.mark.skipif(UV is None, reason="needs uv to build the env")
@pytest.mark.parametrize("env_name", ["data", "train"])
def test_an_env_alone_runs_the_simulate_and_split_scripts(tmp_path, env_name):
    """The env's pip part in a fresh venv runs the data rules' scripts, which find the
    library from the workflow's own location: no parent paths, no PYTHONPATH, no install.
    (uv links the train env's ~2 GB of wheels from its cache in about a second.)"""
    venv = tmp_path / "venv"
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("\n".join(pip_section(ROOT / f"envs/{env_name}.yaml")) + "\n")
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    subprocess.run([UV, "venv", "-q", "--python", python, venv], check=True)
    subprocess.run(
        [UV, "pip", "install", "-q", "--python", venv / "bin/python", "-r", requirements],
        check=True,
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    work = tmp_path / "work"
    work.mkdir()

    def run_script(script, **job):
        job = {"wildcards": {}, "params": {}, **job, "script": str(ROOT / script)}
        job.update(scriptdir=str(ROOT / "workflow/scripts"), log=str(work / job["log"]))
        job["found"] = str(work / "found.json")
        result = subprocess.run(
            # -I: isolated, so neither PYTHONPATH nor the user's site-packages leak in.
            [venv / "bin/python", "-I", "-c", RUNNER, json.dumps(job)],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        return json.loads((work / "found.json").read_text())

    shards = []
    for klass, simulator in [("blobs", "blobs"), ("rings", "rings")]:
        shard = f"results/images/all/{klass}/shard-0"
        found = run_script(
            "workflow/scripts/simulate.py",
            input=[[], {}],
            output=[[shard], {}],
            params={
                "simulator": simulator,
                "simulator_params": {},
                "seed": 1,
                "image_size": 32,
                "images_per_class": 4,
                "images_per_shard": 4,
            },
            wildcards={"klass": klass, "shard": "0"},
            log=f"simulate-{klass}.log",
        )
        shards.append(shard)
    found = run_script(
        "workflow/scripts/split.py",
        input=[[], {"shards": shards}],
        output=[
            [],
            {
                "train": "results/images/train",
                "validation": "results/images/validation",
                "manifest": "results/images/manifest.tsv",
            },
        ],
        params={"validation_fraction": 0.5, "seed": 1},
        log="split.log",
    )
    assert len((work / "results/images/manifest.tsv").read_text().splitlines()) == 1 + 8
    assert found["simtrain"] == str(ROOT / "src/simtrain/__init__.py")
    assert found["numpy"].startswith(str(venv))
    assert not any(str(ROOT / ".venv") in entry for entry in found["path"])
