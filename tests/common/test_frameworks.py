"""A job's frameworks: a Keras backend that is not installed fails first, with what to do."""

from __future__ import annotations

import importlib.util
import os

import pytest

from simtrain.common import frameworks


def test_a_missing_keras_backend_is_named_with_how_to_install_it(monkeypatch):
    monkeypatch.setattr(os, "environ", dict(os.environ))  # prepare_job sets variables
    before = dict(os.environ)
    found = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name: None if name == "jax" else found(name)
    )
    with pytest.raises(ValueError, match=r"keras_backend: jax, but jax is not installed") as error:
        frameworks.prepare_job(1, keras_backend="jax")
    assert "uv sync --extra jax" in str(error.value) and "envs/train-jax.yaml" in str(error.value)
    assert os.environ == before  # failed before changing anything
