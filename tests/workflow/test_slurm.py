"""The workflow through profiles/slurm, on a throwaway one-node Slurm cluster (.ci/slurm.sh).

Snakemake runs from a separate environment holding the `cluster` dependency group (the Slurm
executor plugin): installed into the project's .venv, the plugin would slow every other
Snakemake start-up in the suite. See docs/cluster.md.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import pytest
import yaml

from tests.conftest import (
    FINISHED_RUNS,
    ROOT,
    TINY_CONFIG,
    job_counts,
    replicate_dirs,
    snakemake,
    unavailable,
    write_config,
)

pytestmark = pytest.mark.slurm

SLURM_SH = ROOT / ".ci" / "slurm.sh"
PROFILE = ROOT / "profiles" / "slurm"
# The CI cluster has no accounting database, so `sacct` fails and the plugin's default
# status query would wait forever: ask squeue (the cluster keeps finished jobs listed for
# MinJobAge=600 s), and poll at once. Users keep the plugin's defaults.
CI_STATUS_FLAGS = (
    "--slurm-status-command",
    "squeue",
    "--slurm-init-seconds-before-status-checks",
    "2",
    "--seconds-between-status-checks",
    "2",
)
# What a replicate writes that must not depend on where it ran (CPU: bit-reproducible).
RESULT_FILES = [
    "history.tsv",
    "batches.tsv",
    "predictions.tsv",
    "diagnostics.json",
    "config.resolved.yaml",
]
# One tiny run per training rule the workflow defines; the deep run exercises GPU routing.
TINY_RUNS = {
    "train_run": {"cnn": {"model": "small_cnn", "epochs": 1, "batch_size": 8}},
    "train_baseline": {"baseline": {"model": "baseline"}},
}
PACKED_FILES = [
    f"results/packed/{split}/{name}"
    for split in ("train", "validation")
    for name in ("images.npy", "labels.npy", "classes.json")
]


def local_rules() -> set[str]:
    """Rules Snakemake runs itself instead of submitting: `all` and the localrules lists."""
    sources = [ROOT / "Snakefile", *sorted((ROOT / "workflow" / "rules").glob("*.smk"))]
    names = {"all"}
    for source in sources:
        for block in re.findall(r"^localrules:\n((?:    .*\n)+)", source.read_text(), re.M):
            names |= {name.strip(" ,") for name in block.split() if name.strip(" ,")}
    return names


def defined_rules() -> set[str]:
    sources = [ROOT / "Snakefile", *sorted((ROOT / "workflow" / "rules").glob("*.smk"))]
    return {
        name
        for source in sources
        for name in re.findall(r"^rule (\w+):", source.read_text(), flags=re.MULTILINE)
    }


def cluster_venv() -> Path:
    """This checkout's environment with the `cluster` group, outside the project's .venv."""
    if os.environ.get("SIMTRAIN_CLUSTER_VENV"):
        return Path(os.environ["SIMTRAIN_CLUSTER_VENV"])
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    checkout = hashlib.sha256(str(ROOT).encode()).hexdigest()[:8]
    return cache / "simtrain" / f"cluster-venv-{checkout}"


@pytest.fixture(scope="module")
def cluster_env() -> dict[str, str]:
    """Environment variables that put the cluster venv's Python first (jobs inherit them)."""
    uv = shutil.which("uv")
    if uv is None:
        unavailable("uv not found: it builds the environment with the Slurm plugin")
    venv = cluster_venv()
    env = {key: value for key, value in os.environ.items() if key != "VIRTUAL_ENV"}
    # --frozen: install exactly uv.lock, never rewrite it.
    subprocess.run(
        [uv, "sync", "--frozen", "--group", "cluster", "--quiet"],
        cwd=ROOT,
        env={**env, "UV_PROJECT_ENVIRONMENT": str(venv)},
        check=True,
        timeout=600,
    )
    return {
        **env,
        "VIRTUAL_ENV": str(venv),
        "PATH": f"{venv / 'bin'}{os.pathsep}{env['PATH']}",
    }


def slurm_installed() -> bool:
    search_path = f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin"
    return all(
        shutil.which(tool, path=search_path) for tool in ("sinfo", "slurmctld", "slurmd", "munged")
    )


def can_be_root() -> bool:
    if os.geteuid() == 0:
        return True
    return (
        shutil.which("sudo") is not None and subprocess.run(["sudo", "-n", "true"]).returncode == 0
    )


@pytest.fixture(scope="module")
def slurm_cluster(tmp_path_factory) -> dict[str, str]:
    """A running one-node cluster; yields the variables clients need. Always stopped."""
    if not slurm_installed():
        if not os.environ.get("CI"):
            unavailable("Slurm not installed; run: sudo bash .ci/slurm.sh install")
        install = subprocess.run(
            ["bash", str(SLURM_SH), "install"], capture_output=True, text=True, timeout=600
        )
        if install.returncode != 0:
            unavailable(f"Slurm not installed, and .ci/slurm.sh install failed: {install.stderr}")
    if not can_be_root():
        unavailable("starting slurmd and munged needs root or passwordless sudo")
    etc_config = Path("/etc/slurm/slurm.conf")
    if etc_config.exists() and not etc_config.is_symlink():
        unavailable(f"{etc_config} exists: this machine belongs to a real Slurm cluster")
    directory = tmp_path_factory.mktemp("slurm")
    try:
        subprocess.run(["bash", str(SLURM_SH), "start", str(directory)], check=True, timeout=120)
        yield {"SLURM_CONF": str(directory / "slurm.conf")}
    finally:
        subprocess.run(["bash", str(SLURM_SH), "stop", str(directory)], timeout=120)


def cluster_snakemake(
    workdir: Path,
    env: dict[str, str],
    *args: str,
    timeout: int = 420,
    snakefile: Path = ROOT / "Snakefile",
    profile: Path = PROFILE,
):
    """Snakemake from the cluster venv with profiles/slurm, killed after `timeout` seconds."""
    command = [
        *("timeout", "-k", "10", str(timeout)),
        *(str(Path(env["VIRTUAL_ENV"]) / "bin" / "python"), "-m", "snakemake"),
        *("--snakefile", str(snakefile), "--directory", str(workdir)),
        *("--workflow-profile", str(profile)),
        *args,
    ]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout + 30)


def slurm_jobs(run_id: str, env: dict[str, str]) -> list[dict[str, str]]:
    """This Snakemake run's Slurm jobs, finished ones included (MinJobAge keeps them)."""
    listing = subprocess.run(
        ["squeue", "--states=all", "--noheader", f"--name={run_id}", "--format=%i|%P|%T|%k"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout
    jobs = []
    for line in listing.split():
        job_id, partition, state, comment = line.split("|")
        rule, wildcards = re.fullmatch(r"rule_(.+?)(?:_wildcards_(.*))?", comment).groups()
        jobs.append(
            {
                "id": job_id,
                "partition": partition,
                "state": state,
                "rule": rule,
                "wildcards": wildcards or "",
            }
        )
    return jobs


def job_details(job_id: str, env: dict[str, str]) -> str:
    """`scontrol show job`: the job's partition, time limit, TRES (GPUs) as Slurm holds them."""
    return subprocess.run(
        ["scontrol", "show", "job", job_id], capture_output=True, text=True, env=env, check=True
    ).stdout


def test_slurm_profile_dry_runs_and_lints_like_the_default(cluster_env, tmp_path):
    config = {**TINY_CONFIG, "runs": {}}
    for rule, runs in TINY_RUNS.items():
        if rule in defined_rules():
            config["runs"].update(runs)
    configfile = write_config(tmp_path, config)

    dry_run = cluster_snakemake(tmp_path, cluster_env, "--configfile", str(configfile), "-n")
    assert dry_run.returncode == 0, dry_run.stderr[-4000:]
    jobs = re.split(r"\nrule ", dry_run.stdout + dry_run.stderr)
    resources = {job.split(":", 1)[0]: job.split("resources:", 1)[-1] for job in jobs[1:]}
    assert "slurm_partition=cpu" in resources["simulate_shard"]
    if "train_run" in resources:
        assert "slurm_partition=gpu" in resources["train_run"]
        assert "gpu=1" in resources["train_run"]

    def lints(result: subprocess.CompletedProcess) -> tuple[int, list[str]]:
        text = result.stdout + result.stderr
        return result.returncode, [line for line in text.splitlines() if "profile" not in line]

    cluster_lint = cluster_snakemake(
        tmp_path, cluster_env, "--configfile", str(configfile), "--lint"
    )
    local_lint = snakemake(tmp_path, "--configfile", str(configfile), "--lint", check=False)
    assert lints(cluster_lint) == lints(local_lint)


def test_workflow_runs_every_job_on_slurm_and_matches_a_local_run(
    slurm_cluster, cluster_env, tmp_path, finished_workflow
):
    # Renaming a training rule must fail here, not silently drop the GPU checks.
    assert {"train_run", "train_baseline"} <= defined_rules()
    # The shared local workflow's cnn (both seeds, as two jobs side by side) and baseline,
    # with one shard per class: the images, hence every result, must come out the same.
    runs = {run: FINISHED_RUNS[run] for run in ("cnn", "base")}
    config = {**TINY_CONFIG, "images_per_shard": TINY_CONFIG["images_per_class"], "runs": runs}
    configfile = write_config(tmp_path, config)

    env = {**cluster_env, **slurm_cluster}
    result = cluster_snakemake(tmp_path, env, *("--configfile", str(configfile), *CI_STATUS_FLAGS))
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-6000:]

    run_id = re.search(r"SLURM run ID: (\S+)", log)[1]
    jobs = slurm_jobs(run_id, env)
    expected = Counter(job_counts(log))
    for rule in local_rules():
        expected.pop(rule, None)
    assert Counter(job["rule"] for job in jobs) == expected
    assert expected["train_run"] == 2 and expected["diagnose_run"] == 3
    assert {job["state"] for job in jobs} == {"COMPLETED"}
    # Training a deep run and diagnosing it (its model) on a GPU node with one GPU; the
    # baseline's diagnosis (no model) and every other job on a CPU node without one.
    for job in jobs:
        deep = job["rule"] == "train_run" or (
            job["rule"] == "diagnose_run" and job["wildcards"].startswith("cnn")
        )
        details = job_details(job["id"], env)
        assert job["partition"] == ("gpu" if deep else "cpu"), job
        assert bool(re.search(r"TresPerJob=gres[:/]gpu:1\b", details)) == deep, details
    assert any(j["rule"] == "diagnose_run" and j["wildcards"].startswith("base") for j in jobs)

    local = finished_workflow.workdir
    for name in PACKED_FILES:
        assert (tmp_path / name).read_bytes() == (local / name).read_bytes(), name
    for folder in replicate_dirs(runs):
        for name in RESULT_FILES:
            path = f"results/{folder}/{name}"
            if (local / path).exists():
                assert (tmp_path / path).read_bytes() == (local / path).read_bytes(), path
            else:
                assert name == "batches.tsv" and folder.startswith("runs/base/"), path


def test_a_two_gpu_training_killed_for_time_resumes_on_its_retry(
    slurm_cluster, cluster_env, tmp_path, finished_workflow
):
    """profiles/slurm with train_run asking for 2 GPUs and, to be killed soon, 1 minute per
    attempt: the job stalls after its first epoch's backup (SIMTRAIN_STALL), Slurm kills it
    for time, and the profile's retry (2 minutes) resumes it to the finished run's history."""
    copy = finished_workflow.copy(tmp_path / "workflow")
    profile = yaml.safe_load((PROFILE / "config.yaml").read_text())
    assert profile["retries"] >= 1
    assert profile["set-resources"]["train_run"]["runtime"] == "240 * attempt"
    profile["set-resources"]["train_run"].update(gpu=2, runtime="1 * attempt")
    (tmp_path / "profile").mkdir()
    write_config(tmp_path / "profile", profile)
    log = copy.workdir / "results/logs/train/cnn/seed-0.log"
    log.unlink()  # the finished run's lines
    target = "results/runs/cnn/seed-0/metrics.json"
    env = {
        **cluster_env,
        **slurm_cluster,
        "SIMTRAIN_STALL": f"train.after_backup@{tmp_path / 'stalled'}",
    }
    result = cluster_snakemake(
        copy.workdir,
        env,
        *(target, "--forcerun", "train_run", "--configfile", str(copy.config)),
        *("--verbose", "--slurm-keep-successful-logs", *CI_STATUS_FLAGS),
        snakefile=copy.snakefile,
        profile=tmp_path / "profile",
        timeout=400,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]

    jobs = slurm_jobs(re.search(r"SLURM run ID: (\S+)", output)[1], env)
    jobs.sort(key=lambda job: int(job["id"]))
    assert [(job["rule"], job["state"]) for job in jobs] == [
        ("train_run", "TIMEOUT"),
        ("train_run", "COMPLETED"),
    ]
    for attempt, job in enumerate(jobs, start=1):
        details = job_details(job["id"], env)
        assert f"TimeLimit=00:0{attempt}:00" in details, details
        assert re.search(r"TresPerJob=gres[:/]gpu:2\b", details), details
    # What the plugin asked Slurm for: the job, then the job step inside it (its log).
    sbatch = re.findall(r"sbatch call: (.+)", output)
    assert len(sbatch) == 2 and all("--gpus=2" in call for call in sbatch), sbatch
    assert [re.search(r" -t (\d+)", call)[1] for call in sbatch] == ["1", "2"]
    assert not any("--ntasks-per-gpu" in call for call in sbatch)
    slurm_log = next((copy.workdir / ".snakemake/slurm_logs").rglob(f"{jobs[1]['id']}.log"))
    srun = re.search(r"The call for this job is: (srun .+)", slurm_log.read_text())[1]
    assert " -n1 " in srun and "--gpus=2" in srun, srun
    # One process was handed both (fake) GPUs; it resumed after the epoch before the stall.
    training = log.read_text()
    assert "CUDA_VISIBLE_DEVICES=0,1" in training
    assert re.findall(r"resuming after epoch (\d+)", training) == ["1"]
    metrics = json.loads((copy.results / "runs/cnn/seed-0/metrics.json").read_text())
    assert metrics["devices"] == "cpu"  # /dev/null is no GPU: listed as given, not usable
    name = "runs/cnn/seed-0/history.tsv"
    assert (copy.results / name).read_bytes() == (finished_workflow.results / name).read_bytes()
