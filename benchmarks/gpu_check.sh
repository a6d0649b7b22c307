#!/usr/bin/env bash
# The GPU benchmarks of issues 3 and 4 as one prepared run on a lent H100/H200 (JAX, no
# TensorFlow there). Prepare here, once, in the repo root (wheels Keras needs that the device
# image lacks; .whl/ is ignored by git):
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
#     --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl keras==3.15.1 namex optree
# then run it there with the device tool: command "bash benchmarks/gpu_check.sh", carry [".whl"],
# timeout_s 580 (the three timeouts below add up to 560 s). The JSON files come back under $OUT; copy them to results/benchmarks/.
set -euo pipefail
out=${OUT:-results/benchmarks}
mkdir -p "$out"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site:$PWD KERAS_BACKEND=jax PYTHONUNBUFFERED=1
nvidia-smi -L
python3 -c "import jax, keras; print('jax', jax.__version__, jax.devices(), 'keras', keras.__version__)"
# Every figure runs with --precision float32: on Hopper, TensorFlow and JAX run float32
# convolutions and matmuls as TF32 unless pinned (mfr.core.precision); each JSON states the
# setting and the device under "precision". The cheap one (embedding) runs once more as tf32.
# issue 4: the whole cached sweep at Table 4.2 scale; thesis-style measured on 1/16 of the pairs
# for N = 10 and 70 over 2 epochs and extrapolated (marked so in the JSON)
timeout 400 python3 benchmarks/bench_train.py --scale table42 --thesis-style-n 10,70 \
    --thesis-style-fraction 0.0625 --thesis-style-epochs 2 --precision float32 --out "$out" \
    2>&1 | tee "$out/bench_train.log"
# issue 3: embedding throughput, per unique image vs per pair; float32, then TF32 (issue 19)
timeout 90 python3 benchmarks/bench_embed.py --device-label gpu --unique 512 --pairs 4000 \
    --repeats 3 --precision float32 --out "$out/embed_gpu_jax.json" 2>&1 | tail -20
timeout 70 python3 benchmarks/bench_embed.py --device-label gpu --unique 512 --pairs 4000 \
    --repeats 3 --precision tf32 --out "$out/embed_gpu_jax_tf32.json" 2>&1 | tail -20 \
    || echo "tf32 embedding: did not finish in its 70 s"
