"""A job's numerical frameworks, set up before any of them is imported.

TensorFlow, XLA (JAX) and the BLAS libraries size their thread pools once, when they load,
from environment variables; left alone they each take every core of the machine, so jobs
running side by side oversubscribe it. `prepare_job` pins them all to the threads the rule
declared, and picks the Keras backend, which Keras reads once at its first import.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys

log = logging.getLogger(__name__)

KERAS_BACKENDS = ("tensorflow", "jax")
INSTALL_HINTS = {
    "tensorflow": "`uv sync` (`--extra gpu` on a GPU node), or --sdm conda (envs/train.yaml)",
    "jax": "`uv sync --extra jax` (`--extra jax-gpu` on a GPU node), or --sdm conda "
    "(envs/train-jax.yaml, train-jax-gpu.yaml with train_env: gpu)",
}

_BLAS_VARIABLES = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)


def thread_environment(threads: int) -> dict[str, str]:
    """The environment variables that hold every framework to `threads` compute threads."""
    if not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be a positive integer, got {threads!r}")
    n = str(threads)
    variables = dict.fromkeys(_BLAS_VARIABLES, n)
    # TensorFlow: one pool runs an op's pieces (intra), one runs independent ops (inter);
    # a single inter-op thread keeps the total at `threads`.
    variables.update(TF_NUM_INTRAOP_THREADS=n, TF_NUM_INTEROP_THREADS="1")
    if threads == 1:
        # XLA's CPU client has no thread-count flag; it can only be made single-threaded.
        flags = os.environ.get("XLA_FLAGS", "")
        extra = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
        variables["XLA_FLAGS"] = f"{flags} {extra}".strip() if extra not in flags else flags
    return variables


def prepare_job(threads: int, keras_backend: str | None = None) -> None:
    """Limit every framework to `threads` and select the Keras backend; call first thing.

    keras_backend: "tensorflow" or "jax"; None leaves KERAS_BACKEND as it is (jobs that do
    not run Keras).
    """
    if keras_backend is not None:
        if keras_backend not in KERAS_BACKENDS:
            raise ValueError(
                f"keras_backend: {keras_backend!r} is not one of {', '.join(KERAS_BACKENDS)}"
            )
        if importlib.util.find_spec(keras_backend) is None:
            raise ValueError(
                f"keras_backend: {keras_backend}, but {keras_backend} is not installed for "
                f"{sys.executable}: {INSTALL_HINTS[keras_backend]}"
            )
        keras = sys.modules.get("keras")  # looked up, not imported: jobs without Keras
        if keras is not None and keras.backend.backend() != keras_backend:
            raise RuntimeError(
                f"Keras was imported with backend {keras.backend.backend()!r} before "
                f"keras_backend={keras_backend!r} could be set"
            )
        os.environ["KERAS_BACKEND"] = keras_backend
    loaded = [m for m in ("tensorflow", "jax", "numpy") if m in sys.modules]
    if loaded:
        log.warning("thread limits set after %s was imported may not apply", ", ".join(loaded))
    os.environ.update(thread_environment(threads))
    log.info("threads: %d%s", threads, f", Keras backend {keras_backend}" if keras_backend else "")
