"""The Snakemake workflow itself: a tiny end-to-end run, reruns, config handling."""

import json
import os
import re
import shutil

import numpy as np
import pytest
import yaml

from tests.conftest import ROOT, Workflow, copy_checkout, job_counts, snakemake, write_config


def planned_classes(result) -> set[str]:
    return set(re.findall(r"wildcards: klass=([\w-]+)", result.stdout))


def test_data_stage_writes_images_manifest_and_packed_arrays(data_workflow):
    results = data_workflow.results
    manifest = (results / "images/manifest.tsv").read_text().splitlines()
    assert len(manifest) == 1 + 3 * 12
    train = np.load(results / "packed/train/images.npy", mmap_mode="r")
    validation = np.load(results / "packed/validation/images.npy", mmap_mode="r")
    assert train.shape == (27, 32, 32, 1) and validation.shape == (9, 32, 32, 1)
    assert len(list((results / "images/all/rings").glob("shard-*"))) == 3


def test_an_unchanged_config_plans_nothing(data_workflow):
    result = data_workflow.run("-n")
    assert "Nothing to be done" in result.stdout + result.stderr


def test_changing_one_class_reruns_only_that_class(data_workflow, tmp_path):
    def change(c):
        c["classes"]["rings"]["params"]["noise"] = 0.2

    result = data_workflow.dry_run(change=change, directory=tmp_path)
    jobs = job_counts(result.stdout)
    assert jobs["simulate_shard"] == 3
    assert planned_classes(result) == {"rings"}
    assert jobs["split_dataset"] == 1 and jobs["pack_split"] == 2


def test_changing_the_validation_fraction_resplits_without_resimulating(data_workflow, tmp_path):
    change = lambda c: c.update(validation_fraction=0.5)  # noqa: E731
    result = data_workflow.dry_run(change=change, directory=tmp_path)
    jobs = job_counts(result.stdout)
    assert "simulate_shard" not in jobs
    assert jobs["split_dataset"] == 1 and jobs["pack_split"] == 2


def test_editing_a_plugin_simulator_reruns_its_class(tmp_path):
    (tmp_path / "my_sims.py").write_text(
        "def noise(rng, size, level=0.5):\n    return rng.uniform(0, level, (size, size))\n"
    )
    config = {
        "seed": 1,
        "image_size": 32,
        "images_per_class": 4,
        "images_per_shard": 2,
        "validation_fraction": 0.5,
        "classes": {"plugin": {"simulator": "my_sims:noise"}, "blobs": {"simulator": "blobs"}},
    }
    path = write_config(tmp_path, config)
    snakemake(tmp_path, "--cores", "2", "--configfile", str(path))
    source = tmp_path / "my_sims.py"
    source.write_text(source.read_text() + "# edited\n")
    result = snakemake(tmp_path, "-n", "--cores", "2", "--configfile", str(path))
    assert job_counts(result.stdout)["simulate_shard"] == 2
    assert planned_classes(result) == {"plugin"}


def test_editing_a_library_module_reruns_the_rules_that_use_it(tmp_path):
    # A private copy of the workflow, so the test can edit its code.
    copy = tmp_path / "workflow-copy"
    copy.mkdir()
    copy_checkout(copy)
    env = {"PYTHONPATH": str(copy / "src")}
    workdir = tmp_path / "work"
    workdir.mkdir()
    from tests.conftest import TINY_CONFIG

    path = write_config(workdir, TINY_CONFIG)
    args = ["--cores", "2", "--configfile", str(path)]
    snakemake(workdir, *args, snakefile=copy / "Snakefile", env=env)
    # The comparison's code: the sample grids do not use it, so nothing reruns.
    comparison = copy / "src/simtrain/reporting/comparison.py"
    comparison.write_text(comparison.read_text() + "\n# edited\n")
    result = snakemake(workdir, "-n", *args, snakefile=copy / "Snakefile", env=env)
    assert job_counts(result.stdout) == {}, result.stdout[-3000:]
    simulators = copy / "src/simtrain/data/simulators.py"
    simulators.write_text(simulators.read_text() + "\n# edited\n")
    result = snakemake(workdir, "-n", *args, snakefile=copy / "Snakefile", env=env)
    assert job_counts(result.stdout)["simulate_shard"] == 9


def test_a_finished_workflow_moved_to_another_folder_plans_nothing(
    finished_workflow, data_workflow, tmp_path
):
    # A clone with its results, moved as a whole: its library inputs are named relative to it.
    moved = finished_workflow.copy(tmp_path / "clone")
    assert moved.snakefile == tmp_path / "clone" / "Snakefile"
    result = moved.run("-n")
    assert "Nothing to be done" in result.stdout + result.stderr, result.stdout[-3000:]
    # Results kept apart from the code (--directory) and moved on their own.
    result = data_workflow.copy(tmp_path / "apart").run("-n")
    assert "Nothing to be done" in result.stdout + result.stderr, result.stdout[-3000:]


def test_cores_beyond_the_machine_are_capped_to_its_cpus(tmp_path, tiny_config):
    # The Snakefile's cap relies on Snakemake internals (workflow.register_resource("_cores")),
    # so the behaviour is tested: more single-thread jobs than CPUs, never more running.
    cpus = len(os.sched_getaffinity(0))
    per_class = (cpus + 3) // 2  # two classes of one-image shards: more jobs than CPUs
    tiny_config.update(images_per_class=per_class, images_per_shard=1)
    tiny_config["classes"] = {k: tiny_config["classes"][k] for k in ("blobs", "rings")}
    path = write_config(tmp_path, tiny_config)
    cores = str(cpus + 8)
    result = snakemake(
        tmp_path, "--cores", cores, "--configfile", str(path), "--until", "simulate_shard"
    )
    assert f"--cores {cores} capped at this machine's {cpus} CPUs" in result.stderr
    running = most = 0
    for line in result.stderr.splitlines():  # Snakemake's log, in order
        if re.match(r"(local)?rule simulate_shard:", line):
            running += 1
            most = max(most, running)
        elif line.startswith("Finished jobid:"):
            running -= 1
    assert job_counts(result.stdout + result.stderr)["simulate_shard"] == 2 * per_class > cpus
    assert most == cpus


def test_a_configfile_replaces_the_default_config(tmp_path, tiny_config):
    path = write_config(tmp_path, tiny_config)
    result = snakemake(tmp_path, "-n", "--cores", "2", "--configfile", str(path))
    assert "train_run" not in job_counts(result.stdout)  # the default config's runs are gone
    assert planned_classes(result) == {"blobs", "rings", "streaks"}


def test_config_overrides_single_keys(tmp_path, tiny_config):
    path = write_config(tmp_path, tiny_config)
    result = snakemake(
        tmp_path, "-n", "--cores", "2", "--configfile", str(path), "--config", "images_per_shard=12"
    )
    assert job_counts(result.stdout)["simulate_shard"] == 3  # one shard per class


def test_one_run_changes_by_overlaying_a_file_and_nested_config_gets_a_hint(tmp_path, tiny_config):
    tiny_config["runs"] = {"cnn": {"model": "small_cnn", "epochs": 1}}
    path = write_config(tmp_path, tiny_config)
    overlay = write_config(tmp_path, {"runs": {"cnn": {"repeats": 3}}}, "mine.yaml")
    # Later files merge into earlier ones key by key: the run keeps its model, gains seeds.
    result = snakemake(tmp_path, "-n", "--cores", "2", "--configfile", str(path), str(overlay))
    jobs = job_counts(result.stdout)
    assert jobs["train_run"] == 3 and jobs["simulate_shard"] == 9
    nested = snakemake(
        tmp_path,
        *("-n", "--configfile", str(path), "--config", "runs={cnn: {epochs: 3}}"),
        check=False,
    )
    assert nested.returncode != 0
    assert "runs.cnn.epochs: '3' is not of type 'integer'" in nested.stderr
    assert "--configfile config/config.yaml mine.yaml" in nested.stderr


def test_class_names_yaml_would_retype_are_rejected_unless_quoted(tmp_path):
    text = "seed: 1\nimage_size: 32\nimages_per_class: 4\nimages_per_shard: 4\nclasses:\n"
    unquoted = tmp_path / "unquoted.yaml"
    unquoted.write_text(text + "  007: {simulator: blobs}\n  yes: {simulator: rings}\n")
    result = snakemake(tmp_path, "-n", "--configfile", str(unquoted), check=False)
    assert result.returncode != 0
    assert f"{unquoted}, line 6: the name 007 is read by YAML as the int 7" in result.stderr
    quoted = tmp_path / "quoted.yaml"
    quoted.write_text(text + '  "007": {simulator: blobs}\n  "yes": {simulator: rings}\n')
    result = snakemake(tmp_path, "-n", "--cores", "2", "--configfile", str(quoted))
    assert planned_classes(result) == {"007", "yes"}


def test_the_default_config_is_valid_and_plans_every_stage(tmp_path):
    result = snakemake(tmp_path, "-n", "--cores", "8")
    jobs = job_counts(result.stdout)
    for rule in [
        "simulate_shard",
        "split_dataset",
        "pack_split",
        "train_run",
        "train_baseline",
        "diagnose_run",
        "compare_runs",
    ]:
        assert jobs.get(rule), rule
    assert os.listdir(tmp_path) == [".snakemake"] or not (tmp_path / "results").exists()


def test_a_bad_config_prints_a_few_readable_lines_and_writes_nothing(tmp_path, tiny_config):
    tiny_config["image_sise"] = 32
    path = write_config(tmp_path, tiny_config)
    result = snakemake(tmp_path, "--cores", "2", "--configfile", str(path), check=False)
    assert result.returncode != 0
    assert "Invalid config: image_sise: unknown key\n  did you mean 'image_size'?" in result.stderr
    assert f"config file: {path}" in result.stderr
    assert len(result.stderr.splitlines()) < 10  # not Snakemake's dump of schema and config
    assert not (tmp_path / "results").exists()


PLUGIN_MODEL = """
import keras

def tiny(input_shape, num_classes):
    inputs = keras.Input(input_shape)
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3)(inputs))
    return keras.Model(inputs, keras.layers.Dense(num_classes, activation="softmax")(x))
"""


@pytest.fixture(scope="module")
def trained_runs(tmp_path_factory):
    """Two finished deep runs of the tiny config: a built-in model and a plug-in."""
    from tests.conftest import TINY_CONFIG

    workdir = tmp_path_factory.mktemp("trained")
    (workdir / "my_models.py").write_text(PLUGIN_MODEL)
    config = {
        **TINY_CONFIG,
        "execution": {"tensorboard": True},
        "runs": {
            "builtin": {"model": "small_cnn", "epochs": 1, "batch_size": 9},
            "plugin": {"model": "my_models:tiny", "epochs": 1, "batch_size": 9},
        },
    }
    path = write_config(workdir, config)
    targets = [f"results/runs/{run}/seed-0/metrics.json" for run in ("builtin", "plugin")]
    # The plug-in goes the whole way: diagnosed, plotted, drawn as the model sees it.
    plugin_outputs = [*PLUGIN_OUTPUTS, "results/comparison.md"]
    snakemake(workdir, *targets, *plugin_outputs, "--cores", "2", "--configfile", str(path))
    return workdir, path, targets


PLUGIN_OUTPUTS = [
    "results/runs/plugin/seed-0/diagnostics.json",
    "results/runs/plugin/seed-0/curves.png",
    "results/samples/model_view/plugin.png",
]


def test_a_plugin_model_is_trained_diagnosed_drawn_and_compared(trained_runs):
    workdir, _, _ = trained_runs
    for name in PLUGIN_OUTPUTS:
        assert (workdir / name).stat().st_size > 0, name
    diagnostics = json.loads((workdir / PLUGIN_OUTPUTS[0]).read_text())
    assert diagnostics["run"] == "plugin" and diagnostics["findings"]
    # The plug-in has no BatchNorm layer: the checks that need one say so instead of failing.
    skipped = {item["code"]: item["reason"] for item in diagnostics["skipped"]}
    assert "BatchNorm" in skipped["BATCHNORM_STATISTICS"]
    metrics = json.loads((workdir / "results/runs/plugin/seed-0/metrics.json").read_text())
    assert metrics["model"] == "my_models:tiny"
    # execution: tensorboard: true wrote the run's TensorBoard logs beside its tables.
    for split in ("train", "validation"):
        assert list((workdir / f"results/runs/plugin/seed-0/tensorboard/{split}").iterdir())
    assert "| `plugin` | my_models:tiny |" in (workdir / "results/comparison.md").read_text()


def planned_training(workdir, config_path, targets, change=None) -> dict[str, int]:
    result = Workflow(workdir, config_path).dry_run(*targets, change=change, directory=workdir)
    if "Nothing to be done" in result.stdout + result.stderr:
        return {}
    return {
        run: len(re.findall(rf"wildcards: run={run}, replicate=\d+\n", result.stdout))
        for run in ("builtin", "plugin")
    }


def test_changing_execution_settings_retrains_nothing_and_is_recorded(trained_runs):
    workdir, path, targets = trained_runs

    def change(config):
        config["execution"] = {
            "loader_workers": 0,
            "mixed_precision": False,
            "data_parallel": False,
            "tensorboard": False,
        }

    assert planned_training(workdir, path, targets, change) == {}
    metrics = json.loads((workdir / "results/runs/builtin/seed-0/metrics.json").read_text())
    assert metrics["execution"] == {
        "loader_workers": 2,
        "mixed_precision": "auto",
        "data_parallel": "auto",
        "threads": 2,
    }
    assert metrics["backend"] == "tensorflow"


def test_switching_the_keras_backend_retrains_every_deep_run(trained_runs):
    workdir, path, targets = trained_runs
    change = lambda c: c.update(keras_backend="jax")  # noqa: E731
    assert planned_training(workdir, path, targets, change) == {"builtin": 1, "plugin": 1}


def test_a_run_trained_under_jax_through_the_workflow_records_it(trained_runs, tmp_path):
    workdir, path, targets = trained_runs
    copy = tmp_path / "copy"
    shutil.copytree(workdir, copy, symlinks=True)
    config = copy / path.relative_to(workdir)
    snakemake(
        copy,
        targets[0],
        "--cores",
        "2",
        "--configfile",
        str(config),
        "--config",
        "keras_backend=jax",
    )
    metrics = json.loads((copy / targets[0]).read_text())
    assert metrics["backend"] == "jax"
    assert "backend jax" in (copy / "results/logs/train/builtin/seed-0.log").read_text()


def test_editing_a_plugin_model_retrains_only_the_runs_that_use_it(trained_runs):
    workdir, path, targets = trained_runs
    source = workdir / "my_models.py"
    source.write_text(source.read_text() + "# edited\n")
    try:
        assert planned_training(workdir, path, targets) == {"builtin": 0, "plugin": 1}
    finally:
        source.write_text(PLUGIN_MODEL)  # an older mtime cannot be restored: touch outputs
        snakemake(workdir, *targets, "--touch", "--cores", "1", "--configfile", str(path))


def test_the_full_config_plans_every_run_at_the_original_scale_without_running_anything(
    tmp_path,
):
    full = ROOT / "config" / "full.yaml"
    result = snakemake(tmp_path, "-n", "--cores", "8", "--configfile", str(full))
    jobs = job_counts(result.stdout)
    runs = yaml.safe_load(full.read_text())["runs"]
    seeds = {run: settings.get("repeats", 1) for run, settings in runs.items()}
    deep = [run for run, settings in runs.items() if settings["model"] != "baseline"]
    assert len({settings["model"] for settings in runs.values()}) >= 5  # 4 architectures + baseline
    assert jobs["train_run"] == sum(seeds[run] for run in deep)
    assert jobs["diagnose_run"] == sum(seeds.values())
    assert jobs["plan_fixes"] == 1  # seed_replica's siblings are planned once it is diagnosed
    assert jobs["simulate_shard"] == 5 * 16  # 8 000 images per class, 500 per shard
    assert not (tmp_path / "results").exists()
