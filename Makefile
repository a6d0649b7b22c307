# mfr: make setup (once), make test, make demo
PY ?= .venv/bin/python
VENV_BIN := $(dir $(PY))
PYTEST := $(PY) -m pytest -q
# A Keras-2 interpreter running the original keras-vggface, for the parity tests (see setup-keras2)
export MFR_KERAS2_PYTHON ?= $(CURDIR)/.venv-keras2/bin/python

.PHONY: setup setup-keras2 test test-tf test-jax lint demo bench clean

setup:  ## create .venv and install mfr with everything CI and the notebooks need
	python3 -m venv .venv
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[cpu,jax,faces,notebooks,dev,baselines]"
	$(PY) -m ipykernel install --user --name mfr --display-name "mfr (.venv)" >/dev/null
	$(MAKE) setup-keras2

# keras-vggface 0.6 itself on tf-keras (Keras 2), reusing .venv's TensorFlow: the tests check
# that mfr's SENet50 gives its embeddings from the same weight file (tests/test_keras_vggface_parity.py)
setup-keras2:
	$(PY) -m venv .venv-keras2
	$(PY) -c "import sysconfig; print(sysconfig.get_path('purelib'))" > \
	  "$$(.venv-keras2/bin/python -c "import sysconfig; print(sysconfig.get_path('purelib'))")/mfr_venv.pth"
	.venv-keras2/bin/python -m pip install -q --no-deps "tf-keras==$$($(PY) -c 'import importlib.metadata as m; print(m.version("tensorflow-cpu"))' | cut -d. -f1,2).*" keras-vggface==0.6 keras-applications==1.0.8

lint:
	$(VENV_BIN)ruff check mfr tests benchmarks notebooks

test-tf:  ## every test, TensorFlow backend
	KERAS_BACKEND=tensorflow $(PYTEST)

test-jax:  ## the backend-agnostic Keras tests again, JAX backend
	KERAS_BACKEND=jax $(PYTEST) -m backend

test: lint test-tf test-jax

demo:  ## the pipeline as far as it goes, offline, on a generated RMFRD-layout sample
	$(PY) -m mfr.demo --out results/demo

bench:
	$(PY) benchmarks/bench_partition.py

clean:
	rm -rf results/demo .pytest_cache .ruff_cache
