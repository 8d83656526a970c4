# Quickstart: `make demo` and `make test` each create .venv on first use.
# `make demo` installs the package alone; `make test` installs it with the test and export
# extras (torch, transformers: the larger part of the install) in one pip run. Each install
# runs again only when pyproject.toml changes, and says how long it took.
# pip installs without byte-compiling (`--no-compile`): compiling every module of torch,
# transformers and jax took about half the install (157 s -> 81 s with the extras on a 2-core
# AMD EPYC); Python writes the bytecode of the modules a run imports the first time it
# imports them (about 16 s once for `make test`'s imports): make clears PYTHONDONTWRITEBYTECODE
# for its commands, or every process would compile those modules again.
PY ?= python3
export PYTHONDONTWRITEBYTECODE :=
VENV := .venv
BIN := $(VENV)/bin
BASE := $(VENV)/.installed-base
FULL := $(VENV)/.installed-test

$(BASE): pyproject.toml
	@start=$$(date +%s); \
	echo "vljax: installing the package into $(VENV) ..."; \
	$(PY) -m venv $(VENV) && \
	$(BIN)/pip install --quiet --disable-pip-version-check --no-compile -e . && \
	touch $@ && \
	echo "vljax: install took $$(( $$(date +%s) - start )) s"

# One pip run for the package and its extras (not the base install first and the extras after:
# each pip run resolves and checks every dependency again); the base is then up to date too.
# open_clip (the `open_clip` extra, for tests/export/test_open_clip.py) goes in without its
# dependencies: they pull torchvision, which has no CPU wheel here and brings CUDA torch (GBs);
# its other dependencies are already installed, and the tests give it a torchvision stand-in.
$(FULL): pyproject.toml
	@start=$$(date +%s); \
	echo "vljax: installing the package with its test and export extras into $(VENV) ..."; \
	$(PY) -m venv $(VENV) && \
	$(BIN)/pip install --quiet --disable-pip-version-check --no-compile -e ".[test,export]" && \
	$(BIN)/pip install --quiet --disable-pip-version-check --no-compile --no-deps \
		open_clip_torch==3.3.0 ftfy==6.3.1 wcwidth==0.9.4 && \
	touch $(BASE) $@ && \
	echo "vljax: install took $$(( $$(date +%s) - start )) s"

.PHONY: venv demo test lint bench
venv: $(FULL)

demo: $(BASE)
	$(BIN)/vljax train --config configs/demo.py:quickstart --workdir runs/quickstart

test: $(FULL)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	@# Two workers: the suite is mostly single-threaded XLA compiles (1.4x faster on 2 cores);
	@# whole files per worker, so a module's trained fixture runs once; the heavy files first
	@# (tests/conftest.py). host_malloc: the glibc malloc settings `vljax` itself starts with
	@# (no page faults on XLA's large buffers).
	$(BIN)/python -m vljax.host_malloc $(BIN)/pytest -n 2 --dist loadfile --no-loadscope-reorder

lint: $(FULL)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: $(BASE)
	$(BIN)/python benchmarks/train_step.py --config configs/demo.py --write
