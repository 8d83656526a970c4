# Quickstart: `make demo` and `make test` each create .venv on first use.
# `make demo` installs the package alone; `make test` installs it with the test and export
# extras (torch, transformers: the larger part of the install) in one run. Each install runs
# again only when pyproject.toml changes, and says how long it took.
# The installs use uv (put into the venv by pip): it resolves and unpacks in parallel, so the
# test extras install in 22-30 s where pip took 82-88 s (2-core AMD EPYC, a cold uv cache).
# uv reads neither pip.conf nor PIP_* variables: launch/with_pip_sources.py passes the
# machine's pip sources on (local wheels such as a CPU build of torch). Neither byte-compiles
# what it installs; Python writes the bytecode of the modules a run imports the first time it
# imports them (about 16 s once for `make test`'s imports): make clears
# PYTHONDONTWRITEBYTECODE for its commands, or every process would compile those modules again.
PY ?= python3
export PYTHONDONTWRITEBYTECODE :=
VENV := .venv
BIN := $(VENV)/bin
BASE := $(VENV)/.installed-base
FULL := $(VENV)/.installed-test
UV_VERSION := 0.13.9
UV_INSTALL := $(PY) launch/with_pip_sources.py $(BIN)/uv pip install --quiet --python $(BIN)/python
# The venv starts without pip (ensurepip alone took 7 s) and the machine's pip puts uv in it;
# uv then installs pip too, for users' own `.venv/bin/pip install`s.
NEW_VENV := $(PY) -m venv --without-pip $(VENV) && \
	$(PY) -m pip --python $(BIN)/python install --quiet --disable-pip-version-check --no-compile \
		uv==$(UV_VERSION)

$(BASE): pyproject.toml
	@start=$$(date +%s); \
	echo "vljax: installing the package into $(VENV) ..."; \
	$(NEW_VENV) && \
	$(UV_INSTALL) pip -e . && \
	touch $@ && \
	echo "vljax: install took $$(( $$(date +%s) - start )) s"

# One install for the package and its extras (not the base install first and the extras after:
# each install resolves and checks every dependency again); the base is then up to date too.
# open_clip (the `open_clip` extra, for tests/export/test_open_clip.py) goes in without its
# dependencies: they pull torchvision, which has no CPU wheel here and brings CUDA torch (GBs);
# its other dependencies are already installed, and the tests give it a torchvision stand-in.
$(FULL): pyproject.toml
	@start=$$(date +%s); \
	echo "vljax: installing the package with its test and export extras into $(VENV) ..."; \
	$(NEW_VENV) && \
	$(UV_INSTALL) pip -e ".[test,export]" && \
	$(UV_INSTALL) --no-deps open_clip_torch==3.3.0 ftfy==6.3.1 wcwidth==0.9.4 && \
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
	@# whole files per worker, so a module's trained fixture runs once; the longest files first
	@# (tests/file_order.py). host_malloc: the glibc malloc settings `vljax` itself starts with
	@# (no page faults on XLA's large buffers).
	$(BIN)/python -m vljax.host_malloc $(BIN)/pytest -n 2 --dist loadfile --no-loadscope-reorder

lint: $(FULL)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: $(BASE)
	$(BIN)/python benchmarks/train_step.py --config configs/demo.py --write
