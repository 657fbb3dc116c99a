#!/usr/bin/env bash
# The GPU check, run on the lent GPU machine through the device tool (see benchmarks/README.md).
# That machine has JAX but no TensorFlow, Keras or network: the keras wheel travels in
# .device/wheels (prepared here with `bash benchmarks/device.sh --prepare`).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = "--prepare" ]; then
    keras=$(awk '/^name = "keras"$/ {getline; gsub(/[" ]|version=/, ""); print}' uv.lock)
    grep -qx '/.device/' .git/info/exclude || echo /.device/ >> .git/info/exclude
    pip download --no-deps -d .device/wheels --python-version 3.12 --only-binary=:all: \
        --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 \
        "keras==$keras" namex optree
    exit 0
fi

out=${OUT:-benchmarks/device-results}
mkdir -p "$out"
pip install --no-index --no-deps -q .device/wheels/*.whl
export KERAS_BACKEND=jax PYTHONPATH=src
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$out/gpu.txt"
python3 benchmarks/train_throughput.py --results "$out/results.jsonl" 2>&1 \
    | tee "$out/train_throughput.txt"
