# mfr: make setup (once), make test, make demo
PY ?= .venv/bin/python
VENV_BIN := $(dir $(PY))
PYTEST := $(PY) -m pytest -q

.PHONY: setup test test-tf test-jax lint demo bench clean

setup:  ## create .venv and install mfr with everything CI and the notebooks need
	python3 -m venv .venv
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[cpu,jax,notebooks,dev]"
	$(PY) -m ipykernel install --user --name mfr --display-name "mfr (.venv)" >/dev/null

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
