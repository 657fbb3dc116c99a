"""Send a job's logging, stdout and stderr (Keras progress, tqdm, warnings, TensorFlow's
C++ messages) to its Snakemake log file."""

import logging
import os
import sys


def log_to(path: str) -> None:
    stream = open(path, "a", buffering=1)  # noqa: SIM115 - lives as long as the job
    # Redirect the file descriptors too: native libraries write there, not to sys.std*.
    os.dup2(stream.fileno(), 1)
    os.dup2(stream.fileno(), 2)
    sys.stdout = sys.stderr = stream
    logging.basicConfig(
        stream=stream,
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,
    )
