# mfr: `make demo` (set-up included) and `make test`; `make help` lists the rest
PY ?= .venv/bin/python
VENV_BIN := $(dir $(PY))
PYTEST := $(PY) -m pytest -q
MFR := $(PY) -m mfr.cli
# A Keras-2 interpreter running the original keras-vggface, for the parity tests (see setup-keras2)
export MFR_KERAS2_PYTHON ?= $(CURDIR)/.venv-keras2/bin/python
# TensorFlow's C++ start-up banners say nothing a user needs
export TF_CPP_MIN_LOG_LEVEL ?= 2

# `make demo` writes here, not into the committed sample results/demo: a study's files record
# the machine that made them (its paths, CPU, times, and floats to their last bits)
DEMO_OUT ?= results/demo-run

.PHONY: help setup setup-keras2 _need-setup test test-tf test-jax test-onednn lint demo demo-sample study bench clean

help:  ## this list
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | sed -e 's/:.*## /\t/' -e 's/\$$\$$/$$/g'

$(PY):
	@echo "no $(PY) yet: making it (make setup)"
	$(MAKE) setup

setup:  ## create .venv and install mfr with everything CI and the notebooks need
	python3 -m venv .venv
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[cpu,jax,faces,notebooks,dev,baselines,cluster,index]"
	$(PY) -m ipykernel install --sys-prefix --name mfr --display-name "mfr (.venv)" >/dev/null
	$(MAKE) setup-keras2

# keras-vggface 0.6 itself on tf-keras (Keras 2), reusing .venv's TensorFlow: the tests check
# that mfr's SENet50 gives its embeddings from the same weight file (tests/test_keras_vggface_parity.py)
setup-keras2:
	$(PY) -m venv .venv-keras2
	$(PY) -c "import sysconfig; print(sysconfig.get_path('purelib'))" > \
	  "$$(.venv-keras2/bin/python -c "import sysconfig; print(sysconfig.get_path('purelib'))")/mfr_venv.pth"
	.venv-keras2/bin/python -m pip install -q --no-deps "tf-keras==$$($(PY) -c 'import importlib.metadata as m; print(m.version("tensorflow-cpu"))' | cut -d. -f1,2).*" keras-vggface==0.6 keras-applications==1.0.8

_need-setup:
	@test -x $(PY) || { echo "no $(PY): run \`make setup\` first (or \`make demo\`, which does it)"; exit 2; }

lint: _need-setup  ## ruff over the package, tests, benchmarks and notebooks
	$(VENV_BIN)ruff check mfr tests benchmarks notebooks

test-tf: _need-setup  ## every test, TensorFlow backend
	KERAS_BACKEND=tensorflow $(PYTEST)

test-jax: _need-setup  ## the backend-agnostic Keras tests again, JAX backend
	KERAS_BACKEND=jax $(PYTEST) -m backend

# TensorFlow turns its oneDNN kernels on by default on AVX-512 VNNI/BF16 and AMX CPUs, and they
# print at import: the tests that read stderr run again with them forced on, on any x86 CPU
test-onednn: _need-setup  ## the tests that read stderr again, TensorFlow's oneDNN kernels on
	KERAS_BACKEND=tensorflow TF_ENABLE_ONEDNN_OPTS=1 $(PYTEST) -m stderr_lines

test: lint test-tf test-jax test-onednn  ## what CI runs: ruff, the tests under TensorFlow and JAX, stderr with oneDNN on

demo: $(PY)  ## the whole study offline on a generated sample, into results/demo-run (mfr study --profile demo)
	$(MFR) study --profile demo --out $(DEMO_OUT)

demo-sample: _need-setup  ## rewrite the committed sample results/demo (it records this machine: commit it from one)
	$(MFR) study --profile demo --out results/demo

study: _need-setup  ## the thesis's study: RMFRD ($$MFR_DATA), VGGFace2 weights, a GPU advised
	$(MFR) study --profile thesis --out results/thesis

bench: _need-setup  ## re-measure the partition benchmark
	$(PY) benchmarks/bench_partition.py

clean:  ## remove what the demo, tests and tools wrote: results/demo-run, the sample's data, cache and arrays (its committed files stay; results/thesis too)
	rm -rf .pytest_cache .ruff_cache $(DEMO_OUT) results/demo/synthetic results/demo/cache
	find results/demo -type d \( -name embeddings -o -name checkpoints \) -prune -exec rm -rf {} +
	find results/demo -type f \( -name '*.npy' -o -name '*.npz' -o -name '*.h5' -o -name '*.svg' \
	  -o -name distances.csv -o -name '.*.lock' -o -name '.*.tmp' \) -delete
	rm -f results/demo/partition/train.csv results/demo/partition/val.csv results/demo/partition/test.csv
	find mfr tests benchmarks -type d -name __pycache__ -prune -exec rm -rf {} +
