"""The only module that knows which Keras backend runs: seeding, determinism, devices,
mixed precision and multi-device data parallelism. Everything else uses `keras.ops`."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass

import keras

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Runtime:
    backend: str
    accelerators: tuple[str, ...]
    dtype_policy: str
    data_parallel: bool

    @property
    def devices(self) -> str:
        return ", ".join(self.accelerators) or "cpu"


def accelerators() -> tuple[str, ...]:
    """Usable GPUs/TPUs; empty when CUDA_VISIBLE_DEVICES names a GPU the process cannot use."""
    try:
        devices = keras.distribution.list_devices()
    except Exception as error:  # a broken CUDA install must not stop a CPU run
        log.warning("listing accelerators failed (%s); using the CPU", error)
        return ()
    return tuple(d for d in map(str, devices) if "cpu" not in d.lower())


def _supports_bfloat16(backend: str) -> bool:
    if backend == "jax":
        import jax

        return any(d.platform in ("gpu", "tpu") for d in jax.devices())
    if backend == "tensorflow":
        import tensorflow as tf

        for gpu in tf.config.list_physical_devices("GPU"):
            capability = tf.config.experimental.get_device_details(gpu).get("compute_capability")
            if capability and capability >= (8, 0):
                return True
    return False


def configure(
    seed: int,
    *,
    threads: int | None = None,
    mixed_precision: str | bool = "auto",
    data_parallel: str | bool = "auto",
) -> Runtime:
    """Seed everything, make CPU runs bit-reproducible and pick precision and devices.

    mixed_precision: "auto" (bfloat16 on a GPU that supports it, float32 elsewhere), True
    or False. data_parallel: "auto" (all local accelerators when there are several), True
    or False.
    """
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        if threads:
            # As simtrain.common.frameworks sets them for workflow jobs: `threads` compute
            # threads in all. Must precede any TensorFlow op; later calls raise RuntimeError.
            with contextlib.suppress(RuntimeError):
                tf.config.threading.set_intra_op_parallelism_threads(threads)
                tf.config.threading.set_inter_op_parallelism_threads(1)
        tf.config.experimental.enable_op_determinism()
    keras.utils.set_random_seed(seed)

    found = accelerators()
    if os.environ.get("CUDA_VISIBLE_DEVICES") and not found:
        log.warning(
            "CUDA_VISIBLE_DEVICES=%s but no usable GPU: training on the CPU",
            os.environ["CUDA_VISIBLE_DEVICES"],
        )
    want_mixed = bool(found) if mixed_precision == "auto" else bool(mixed_precision)
    policy = "float32"
    if want_mixed:
        policy = "mixed_bfloat16" if _supports_bfloat16(backend) or not found else "mixed_float16"
    keras.mixed_precision.set_dtype_policy(policy)
    parallel = len(found) > 1 if data_parallel == "auto" else bool(data_parallel)
    runtime = Runtime(backend, found, policy, parallel)
    log.info(
        "backend %s, devices: %s, dtype policy %s, data parallel %s",
        backend,
        runtime.devices,
        policy,
        parallel,
    )
    return runtime


@contextlib.contextmanager
def distribution_scope(runtime: Runtime) -> Iterator[None]:
    """Build and train inside this scope to replicate the model over local devices."""
    if not runtime.data_parallel:
        yield
    elif runtime.backend == "jax":
        devices = keras.distribution.list_devices()
        log.info("data parallel over %d devices: %s", len(devices), ", ".join(map(str, devices)))
        keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
        try:
            yield
        finally:
            keras.distribution.set_distribution(None)
    elif runtime.backend == "tensorflow":
        import tensorflow as tf

        with tf.distribute.MirroredStrategy().scope():
            yield
    else:
        raise ValueError(f"data parallel training is not supported on backend {runtime.backend}")
