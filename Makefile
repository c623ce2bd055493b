# The two commands of the README: `make book` (set up, run every stage, build the book) and `make test`.
PYTHON ?= python3
VENV ?= .venv
PROFILE ?= default
# what pip installs first: the pinned CPU build by default; a user may point it at another index or a wheel file
TORCH ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.rewinterp-installed

.PHONY: book run test setup clean

setup: $(STAMP)

# torch first and pinned: an unpinned torch would pull a multi-GB CUDA build.
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH)
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[book,test]"
	touch $@

run: $(STAMP)
	$(BIN)/rewinterp run --profile $(PROFILE) --chapter all

book: run
	$(BIN)/rewinterp book --profile $(PROFILE)

test: $(STAMP)
	$(BIN)/python -m pytest -n auto --dist loadgroup --no-loadscope-reorder tests

clean:
	rm -rf _build artifacts
