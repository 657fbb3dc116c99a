"""Plan-time checks of real-image folders in a config (simtrain.config), by name only."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import skimage

from simtrain.config import ConfigError, check_classes, check_folders, check_runs
from simtrain.data.folders import planned_images, planned_labelled_images

SHIPPED = Path(skimage.__file__).parent / "data"


def folder(path: Path, *names: str) -> str:
    path.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copy(SHIPPED / name, path / name)
    return str(path)


def config_with(tmp_path: Path, **classes) -> dict:
    return {
        "seed": 0,
        "image_size": 32,
        "images_per_class": 4,
        "validation_fraction": 0.5,
        "classes": {"blobs": {"simulator": "blobs", "params": {}}, **classes},
        "evaluation": {},
        "predict": {},
        "runs": {},
    }


def test_a_folder_class_with_enough_images_passes_and_counts_for_the_runs(tmp_path):
    photos = folder(tmp_path / "photos", "camera.png", "coins.png", "moon.png")
    config = config_with(tmp_path, photos={"folder": photos, "params": {}})
    check_classes(config, search_path=tmp_path)
    # blobs 4 -> 2 + 2, photos 3 -> 1 train + 2 validation: 3 training images in all.
    config["runs"] = {"r": {"model": "baseline", "train_images": 4, "batch_size": 8}}
    config["runs"]["r"].update(steps_per_epoch=None, validation_steps=None)
    with pytest.raises(ConfigError, match=r"runs.r.train_images: 4 is outside \[2, 3\]"):
        check_runs(config, search_path=tmp_path)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"folder": "PHOTOS", "simulator": "blobs"}, "has both simulator and folder"),
        ({"folder": "PHOTOS", "params": {"noise": 0.1}}, "only a simulator takes params"),
        ({"params": {}}, "needs a simulator or a folder"),
        ({"folder": "MISSING"}, r"classes.x.folder: .*missing does not exist"),
        ({"folder": "ONE"}, r"holds 1 image; the split needs at least 2 per class"),
        ({"folder": "EMPTY"}, r"classes.x.folder: .*empty holds no images"),
        ({"folder": "MIXED"}, r"notes.txt is not an image file"),
    ],
)
def test_bad_class_folders_are_named(tmp_path, spec, message):
    paths = {
        "PHOTOS": folder(tmp_path / "photos", "camera.png", "coins.png"),
        "MISSING": str(tmp_path / "missing"),
        "ONE": folder(tmp_path / "one", "camera.png"),
        "EMPTY": folder(tmp_path / "empty"),
        "MIXED": folder(tmp_path / "mixed", "camera.png", "coins.png"),
    }
    (tmp_path / "mixed" / "notes.txt").write_text("not an image")
    spec = {
        key: paths.get(value, value) if isinstance(value, str) else value
        for key, value in spec.items()
    }
    with pytest.raises(ConfigError, match=message):
        check_classes(config_with(tmp_path, x=spec), search_path=tmp_path)


def test_evaluation_sets_and_predictions_are_checked(tmp_path):
    config = config_with(
        tmp_path, coins={"folder": folder(tmp_path / "c", "coins.png", "moon.png")}
    )
    config["runs"] = {"net": {"model": "small_cnn"}, "base": {"model": "baseline"}}
    field = tmp_path / "field"
    folder(field / "coins", "coins.png")
    config["evaluation"] = {"field": str(field)}
    check_folders(config)  # blobs missing: allowed
    folder(field / "blob", "camera.png")
    planned_labelled_images.cache_clear()  # planning lists a folder once per process
    with pytest.raises(ConfigError, match=r"sub-folder 'blob' .*did you mean 'blobs'\?"):
        check_folders(config)
    shutil.rmtree(field / "blob")

    unlabelled = folder(tmp_path / "u", "camera.png")
    prediction = {"folder": unlabelled, "run": "net", "replicate": 0, "model": "final"}
    config["predict"] = {"p": prediction}
    check_folders(config)
    for change, message in [
        ({"run": "nte"}, r"predict.p.run: 'nte' is not a configured run .*did you mean 'net'"),
        ({"replicate": 1}, r"predict.p.replicate: 1 but run 'net' has 1 replicate"),
        ({"run": "base", "model": "best"}, r"predict.p.model: the baseline has one fitted model"),
        ({"folder": str(tmp_path / "nowhere")}, r"predict.p.folder: .*nowhere does not exist"),
    ]:
        config["predict"] = {"p": {**prediction, **change}}
        planned_images.cache_clear()
        with pytest.raises(ConfigError, match=message):
            check_folders(config)
