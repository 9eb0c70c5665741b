# The README's commands, each from a fresh machine (Python 3.9+ with venv; a C++ compiler).
#   make test    build the package into .venv (CPU torch 2.13.0) and run the test suite
#   make bench   the neuron-op benchmark (benchmarks/bench_lif.py), JSON + plot under bench_out/
# TORCH picks the torch to install; leave it empty (TORCH=) to keep the torch already in the venv.
PY ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
BIN := $(VENV)/bin

.PHONY: install test bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)

install: $(BIN)/python
	$(BIN)/pip install -q --upgrade "setuptools>=64" wheel ninja $(TORCH)
	$(BIN)/pip install -q --no-build-isolation -e ".[test]"
	$(BIN)/python -c "import na_cuda, json; print(json.dumps(na_cuda.backends()))"

test: install
	$(BIN)/python -m pytest -q tests

bench: install
	$(BIN)/pip install -q matplotlib
	$(BIN)/python benchmarks/bench_lif.py --out bench_out

clean:
	rm -rf build $(VENV) na_cuda/_C*.so *.egg-info
