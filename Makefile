# The README's commands, each from a fresh machine (Python 3.10+ with venv; a C++ compiler).
#   make demo    build the package into .venv (CPU torch 2.13.0) and train the digits demo with NA (~1 min)
#   make test    build the package into .venv and run the test suite
#   make test-fast  the same without the tests marked slow
#   make lint    ruff check + format check, mypy, clang-format --dry-run (scripts/lint.sh, pinned versions)
#   make bench   the benchmark suite (benchmarks/run.py: neuron op, spikingjelly peer, MNIST step, memory) under
#                bench_out/; BENCH_ARGS=--quick for the smoke run (under a minute on 2 cores)
# TORCH picks the torch to install; leave it empty (TORCH=) to keep the torch already in the venv.
PY ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
BIN := $(VENV)/bin

# The build is redone only when a source or the build configuration changed (the stamp in the venv).
SOURCES := setup.py pyproject.toml $(shell find csrc -name '*.h' -o -name '*.cpp' -o -name '*.cu' -o -name '*.cuh')
STAMP := $(VENV)/.na_cuda-installed

.PHONY: install demo test test-fast bench lint clean

$(BIN)/python:
	$(PY) -m venv $(VENV)

$(STAMP): $(BIN)/python $(SOURCES)
	$(BIN)/pip install -q --upgrade "setuptools>=77" wheel ninja $(TORCH)
	$(BIN)/pip install -q --no-build-isolation -e ".[test]"
	$(BIN)/python -c "import na_cuda, json; print(json.dumps(na_cuda.backends()))"
	touch $@

install: $(STAMP)

# spikingjelly and snnTorch for the conversion tests (tests/test_convert.py, test_spikingjelly.py), without their
# dependencies: their torchvision/torchaudio requirements could make pip replace the torch the kernels were built
# against. Offline, the tests that need them skip with the reason.
PEERS := spikingjelly==2.0.0 loguru snntorch==1.0.0
# NIR (tests/test_nir.py): nir and h5py (na_cuda[nir]); nirtorch for snnTorch's and Norse's own NIR code; Norse
# 1.1.0 (an sdist; --no-deps: its torchvision requirement would replace torch, and its NIR code does not need it).
NIR_PEERS := nir==1.0.8 h5py nirtorch==2.6 norse==1.1.0
PEERS_STAMP := $(VENV)/.na_cuda-peers

$(PEERS_STAMP): $(STAMP)
	$(BIN)/pip install -q --no-deps $(PEERS) || echo "spikingjelly/snnTorch not installed: the conversion tests skip"
	$(BIN)/pip install -q --no-deps $(NIR_PEERS) || echo "nir/nirtorch/norse not installed: the NIR tests skip"
	touch $@

demo: install
	$(BIN)/python -m na_cuda.train

test: install $(PEERS_STAMP)
	$(BIN)/python -m pytest -q tests

test-fast: install $(PEERS_STAMP)
	$(BIN)/python -m pytest -q -m "not slow" tests

BENCH_ARGS ?=

# spikingjelly (the peer) without its dependencies: its torchvision/torchaudio requirements can make pip replace
# the torch the kernels were built against; its LIF needs only loguru.
bench: install
	$(BIN)/pip install -q matplotlib loguru
	$(BIN)/pip install -q --no-deps spikingjelly || echo "spikingjelly not installed: the peer benchmark is skipped"
	$(BIN)/python benchmarks/run.py --out bench_out $(BENCH_ARGS)

lint: $(BIN)/python
	bash scripts/lint.sh $(BIN)/python

clean:
	rm -rf build dist $(VENV) na_cuda/_C*.so *.egg-info
