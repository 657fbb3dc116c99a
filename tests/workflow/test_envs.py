"""The conda envs: generated from uv.lock, and sufficient to run their rules' scripts."""

from __future__ import annotations

import ast
import json
import os
import pickle
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from simtrain.common.modules import module_path
from tests.conftest import ROOT

ENV_FILES = sorted((ROOT / "envs").glob("*.yaml"))
UV = os.environ.get("UV") or shutil.which("uv")


def pip_section(env_file) -> list[str]:
    dependencies = yaml.safe_load(env_file.read_text())["dependencies"]
    return next(d["pip"] for d in dependencies if isinstance(d, dict))


def test_there_is_an_env_per_rule_group_with_gpu_and_jax_variants():
    assert {p.stem for p in ENV_FILES} == {
        "data",
        "report",
        "train",
        "train-gpu",
        "train-jax",
        "train-jax-gpu",
    }


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


@pytest.mark.parametrize("train", ["train", "train-jax"])
def test_the_gpu_env_is_the_train_env_plus_cuda(train):
    cpu = set(pip_section(ROOT / f"envs/{train}.yaml"))
    gpu = set(pip_section(ROOT / f"envs/{train}-gpu.yaml"))
    assert cpu < gpu
    assert any(line.startswith("nvidia-") for line in gpu - cpu)


def test_only_the_jax_envs_have_jax_and_only_the_tensorflow_envs_tensorflow():
    for env_file in ENV_FILES:
        packages = {re.split(r"[=\[ ;]", line)[0] for line in pip_section(env_file)}
        assert ("jax" in packages) == ("jax" in env_file.stem), env_file.name
        is_tensorflow = env_file.stem in ("train", "train-gpu")
        assert ("tensorflow" in packages) == is_tensorflow, env_file.name


def rule_envs() -> dict[str, tuple[str, str]]:
    """Each rule the Snakefile includes: its conda env (from its `conda:` directive: a file's
    stem, or TRAIN_ENV) and its script."""
    rules = {}
    included = re.findall(r'^include: "(.+\.smk)"', (ROOT / "Snakefile").read_text(), re.M)
    for source in [ROOT / name for name in included]:
        blocks = re.split(r"^(?:rule|checkpoint) ", source.read_text(), flags=re.M)[1:]
        for block in blocks:
            name = block.split(":", 1)[0]
            conda = re.search(r"^    conda:\n        (\S+)", block, re.M)
            script = re.search(r'^    script:\n        "\.\./scripts/(\S+)"', block, re.M)
            assert conda and script, f"rule {name} names no conda env or no script"
            value = conda[1]
            env = Path(value.strip('"')).stem if value.startswith('"') else value
            rules[name] = (env, script[1])
    return rules


def test_every_rule_names_an_env_and_the_train_env_is_chosen_by_backend_and_device():
    envs = {env for env, _ in rule_envs().values()}
    assert envs <= {"data", "report", "TRAIN_ENV"}
    common = (ROOT / "workflow/rules/common.smk").read_text()
    for stem in ("train", "train-gpu", "train-jax", "train-jax-gpu"):
        assert f'"../../envs/{stem}.yaml"' in common


# Stands in for Snakemake's script preamble, which would also append the parent
# interpreter's sys.path (as a fallback that hides what the env lacks): gives the script the
# `snakemake` object of a real job and runs it, nothing else.
RUNNER = textwrap.dedent(
    """
    import builtins, json, runpy, sys, types

    class Io(list):
        def __init__(self, items, named):
            super().__init__(items)
            self.__dict__.update(named)

    job = json.loads(sys.argv[1])
    builtins.snakemake = types.SimpleNamespace(
        input=Io(*job["input"]),
        output=Io(*job["output"]),
        params=types.SimpleNamespace(**job["params"]),
        wildcards=types.SimpleNamespace(**job["wildcards"]),
        log=job["log"],
        threads=job["threads"],
        config=job["config"],
        rule=job["rule"],
        scriptdir=job["scriptdir"],
    )
    runpy.run_path(job["script"], run_name="__main__")
    import numpy, simtrain  # where they came from; stdout now goes to the job's log
    found = {"simtrain": simtrain.__file__, "numpy": numpy.__file__, "path": sys.path}
    open(job["found"], "w").write(json.dumps(found))
    """
)
# Rules in DAG order, so each job finds what the one before rewrote.
DAG_ORDER = [
    "simulate_shard",
    "split_dataset",
    "pack_split",
    "plot_samples",
    "train_run",
    "train_baseline",
    "diagnose_run",
    "plan_fixes",
    "plot_run",
    "plot_model_view",
    "verify_fixes",
    "compare_runs",
]
JAX_JOBS = ("train_run", "diagnose_run")
# Which env TRAIN_ENV is, per keras_backend (train_env: cpu).
TRAIN_ENVS = {"tensorflow": "train", "jax": "train-jax"}


def io(files) -> list:
    """A Snakemake input/output/log list as [every file, {name: file or files}]."""
    return [list(files), dict(files.items())]


def finished_jobs(workdir: Path) -> dict[str, dict]:
    """One job per rule of a finished workflow, from the scripts Snakemake left behind
    (--skip-script-cleanup): the pickled `snakemake` object of its preamble, as JSON."""
    jobs = {}
    for script in sorted((workdir / ".snakemake/scripts").glob("*.py")):
        for node in ast.walk(ast.parse(script.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "loads":
                job = pickle.loads(node.args[0].value)
                break
        name = script.name.split(".", 1)[1]  # tmpXXXX.train.py -> train.py
        # The cheapest deep run (2 steps an epoch) where a rule has several jobs.
        if job.rule in jobs and dict(job.wildcards.items()).get("run") != "cnn_partial":
            continue
        jobs[job.rule] = {
            "rule": job.rule,
            "script": str(Path(job.scriptdir) / name),
            "scriptdir": job.scriptdir,
            "input": io(job.input),
            "output": io(job.output),
            "params": dict(job.params.items()),
            "wildcards": dict(job.wildcards.items()),
            "log": list(job.log),
            "threads": job.threads,
            "config": job.config,
        }
    return jobs


def envs_of(env: str) -> dict[str, str]:
    """The env files a rule's env stands for, by Keras backend (TRAIN_ENV: per backend,
    train_env cpu; the others run without Keras)."""
    return dict(TRAIN_ENVS) if env == "TRAIN_ENV" else {"tensorflow": env}


@pytest.fixture(scope="module")
def env_python(tmp_path_factory):
    """The Python of a fresh virtual environment holding exactly an env's pip part, built on
    first use. (uv links the train env's ~2 GB of wheels from its cache in seconds.)"""
    root = tmp_path_factory.mktemp("envs")
    built: dict[str, Path] = {}

    def python(env_name: str) -> Path:
        if env_name not in built:
            venv = root / f"venv-{env_name}"
            requirements = root / f"{env_name}.txt"
            pins = pip_section(ROOT / f"envs/{env_name}.yaml")
            requirements.write_text("\n".join(pins) + "\n")
            version = f"{sys.version_info.major}.{sys.version_info.minor}"
            subprocess.run([UV, "venv", "-q", "--python", version, venv], check=True)
            # No bytecode at install (the project's compile-bytecode): the jobs write what
            # they import, a fraction of the ~12 000 files.
            install = [UV, "pip", "install", "-q", "--no-compile-bytecode"]
            install += ["--python", venv / "bin/python"]
            subprocess.run([*install, "-r", requirements], check=True)
            built[env_name] = venv / "bin/python"
        return built[env_name]

    return python


# Without PYTHON* (PYTHONPATH) and VIRTUAL_ENV: only the venv's own packages.
CLEAN_ENVIRONMENT = {
    k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))
}
BACKEND_PACKAGES = {"tensorflow": "tensorflow", "jax": "jax"}


def imports_on_load(path: Path) -> set[str]:
    """Modules a file imports when it is loaded (dotted, with a `from x import y`'s y as x.y
    too): its module-level and class-level import statements, not those inside functions
    (run only when called: a report job that never loads a model never imports Keras) or
    under `if TYPE_CHECKING:`."""
    found, pending = set(), list(ast.parse(path.read_text()).body)
    while pending:
        node = pending.pop()
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            pending += node.orelse
        elif not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            pending += [
                child for child in ast.iter_child_nodes(node) if isinstance(child, ast.stmt)
            ]
    return found


def third_party_imports(script: Path, backend: str) -> set[str]:
    """Top-level packages outside the standard library and simtrain that loading the script
    loads: its imports and, transitively, those of every simtrain module (and parent
    package) they load; less the other Keras backend's package. Imports inside functions are
    what the real jobs below exercise."""
    found, seen, pending = set(), set(), [script]
    while pending:
        for name in imports_on_load(pending.pop()):
            parts = name.split(".")
            if parts[0] != "simtrain":
                found.add(parts[0])
                continue
            for end in range(1, len(parts) + 1):  # parent packages run their __init__ first
                prefix = ".".join(parts[:end])
                try:
                    path = module_path(prefix)
                except ValueError:  # an attribute, not a module
                    break
                if prefix not in seen:
                    seen.add(prefix)
                    pending.append(path)
    others = {package for name, package in BACKEND_PACKAGES.items() if name != backend}
    return found - set(sys.stdlib_module_names) - {"snakemake"} - others


@pytest.mark.slow
@pytest.mark.skipif(UV is None, reason="needs uv to build the envs")
def test_every_module_a_rules_code_imports_is_in_the_env_its_rule_names(env_python):
    """Static, so it covers every rule, also those the finished workflow has no job of (real
    images): whatever any module a rule's script may load imports when loaded."""
    needs: dict[tuple[str, str], set[str]] = {}
    for env, script in rule_envs().values():
        for backend, env_name in envs_of(env).items():
            imports = third_party_imports(ROOT / "workflow/scripts" / script, backend)
            needs.setdefault((env_name, backend), set()).update(imports)
    assert "matplotlib" in needs[("train", "tensorflow")]  # plot_model_view
    for (env_name, backend), modules in sorted(needs.items()):
        check = "import importlib, sys\nfor name in sys.argv[1:]: importlib.import_module(name)"
        result = subprocess.run(
            [env_python(env_name), "-I", "-c", check, *sorted(modules)],
            env={**CLEAN_ENVIRONMENT, "KERAS_BACKEND": backend},
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, f"envs/{env_name}.yaml: {result.stderr[-2000:]}"


@pytest.mark.slow
@pytest.mark.skipif(UV is None, reason="needs uv to build the envs")
def test_every_rules_script_runs_a_real_job_in_its_env_alone(
    finished_workflow, env_python, tmp_path
):
    """One real job per rule of the finished workflow (its `snakemake` object as Snakemake
    pickled it) runs in a fresh venv of its env's pip part only: no parent paths, no
    PYTHONPATH, no install of simtrain, which the script finds from its own location.
    Training and diagnosis run under both Keras backends' envs."""
    jobs = finished_jobs(finished_workflow.workdir)
    rules = rule_envs()
    # Rules only some configs use (real images) are covered by the import test above.
    assert set(DAG_ORDER) <= set(jobs) and set(DAG_ORDER) <= set(rules)
    work = finished_workflow.copy(tmp_path / "workflow").workdir
    runs = [
        (env_name, rule, backend)
        for env_order in ("data", "report", "TRAIN_ENV")
        for backend in ("tensorflow", "jax")
        for rule in DAG_ORDER
        if rules[rule][0] == env_order
        and (env_name := envs_of(env_order).get(backend))
        # Under JAX, the jobs that run Keras on a model (the others' imports: the test above).
        and (backend == "tensorflow" or rule in JAX_JOBS)
    ]
    assert ("train-jax", "train_run", "jax") in runs
    for env_name, rule, backend in runs:
        python = env_python(env_name)
        job = dict(jobs[rule], found=str(tmp_path / "found.json"))
        if "keras_backend" in job["params"]:
            job["params"] = {**job["params"], "keras_backend": backend}
        result = subprocess.run(
            # -I: isolated, so neither PYTHONPATH nor the user's site-packages leak in.
            [python, "-I", "-c", RUNNER, json.dumps(job)],
            cwd=work,
            env=CLEAN_ENVIRONMENT,
            capture_output=True,
            text=True,
        )
        log = (work / job["log"][0]).read_text()
        assert result.returncode == 0, f"{rule} in envs/{env_name}.yaml:\n{log[-3000:]}"
        found = json.loads((tmp_path / "found.json").read_text())
        library = Path(job["scriptdir"]).resolve().parents[1] / "src/simtrain/__init__.py"
        assert found["simtrain"] == str(library), rule
        assert found["numpy"].startswith(str(python.parents[1])), rule
        assert not any(str(ROOT / ".venv") in entry for entry in found["path"]), rule
        if rule == "train_run":
            out_dir = work / Path(job["output"][1]["model"]).parent
            assert json.loads((out_dir / "metrics.json").read_text())["backend"] == backend
