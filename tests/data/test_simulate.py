from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from simtrain.data.simulate import (
    image_name,
    image_rng,
    shard_count,
    shard_range,
    simulate_image,
    write_shard,
)
from simtrain.data.simulators import resolve_simulator


def shard_bytes(out: Path, shard_size: int, n: int = 7) -> dict[str, bytes]:
    files = {}
    for shard in range(shard_count(n, shard_size)):
        shard_dir = out / f"size{shard_size}" / f"shard-{shard}"
        write_shard(
            shard_dir,
            class_name="rings",
            simulator="rings",
            params={"noise": 0.1},
            seed=3,
            size=32,
            indices=shard_range(shard, n, shard_size),
        )
        files |= {p.name: p.read_bytes() for p in shard_dir.iterdir()}
    return files


def test_images_are_byte_identical_whatever_the_shard_size(tmp_path):
    one_shard = shard_bytes(tmp_path, 7)
    small_shards = shard_bytes(tmp_path, 2)
    assert sorted(one_shard) == [image_name("rings", i) for i in range(7)]
    assert one_shard == small_shards


def test_a_single_image_can_be_regenerated_from_seed_class_and_index(tmp_path):
    files = shard_bytes(tmp_path, 3)
    alone = simulate_image(
        resolve_simulator("rings"),
        class_name="rings",
        simulator_name="rings",
        params={"noise": 0.1},
        seed=3,
        index=5,
        size=32,
    )
    on_disk = tmp_path / "size3" / "shard-1" / image_name("rings", 5)
    assert np.array_equal(np.asarray(Image.open(on_disk)), alone)
    assert image_name("rings", 5) in files


def test_image_streams_differ_by_seed_class_and_index():
    draws = {
        key: image_rng(*key).integers(0, 2**62)
        for key in [(1, "a", 0), (2, "a", 0), (1, "b", 0), (1, "a", 1)]
    }
    assert len(set(draws.values())) == 4
    assert image_rng(1, "a", 0).integers(0, 2**62) == draws[(1, "a", 0)]


def test_shards_cover_every_index_once():
    covered = [i for s in range(shard_count(11, 4)) for i in shard_range(s, 11, 4)]
    assert covered == list(range(11))
    with pytest.raises(ValueError, match="shard 3"):
        shard_range(3, 11, 4)


def test_a_failing_simulator_leaves_no_partial_shard(tmp_path):
    plugin = tmp_path / "failing_sim.py"
    plugin.write_text(
        "import numpy as np\n"
        "def make(rng, size, fail_at=2):\n"
        "    make.calls = getattr(make, 'calls', 0) + 1\n"
        "    if make.calls > fail_at:\n"
        "        raise RuntimeError('boom')\n"
        "    return rng.random((size, size))\n"
    )
    out = tmp_path / "shard-0"
    with pytest.raises(ValueError, match=r"class 'odd' \(simulator 'failing_sim:make'\).*boom"):
        write_shard(
            out,
            class_name="odd",
            simulator="failing_sim:make",
            params={},
            seed=0,
            size=16,
            indices=range(5),
            search_path=tmp_path,
        )
    assert not out.exists()
    assert list(tmp_path.glob(".shard-0*")) == []
