"""Send a job's logging and stderr (tqdm progress, warnings) to its Snakemake log file."""

import logging
import sys


def log_to(path: str) -> None:
    stream = open(path, "a", buffering=1)  # noqa: SIM115 - lives as long as the job
    sys.stderr = stream
    logging.basicConfig(
        stream=stream, level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
