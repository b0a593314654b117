# The README's two commands: `make demo` and `make test`.
# Both create .venv when missing. torch is installed first and pinned, because
# an unpinned torch (asked for by any dependency) pulls a multi-GB CUDA build;
# torch==2.13.0 resolves to the CPU wheel on this disk.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.vaepipe-installed
TORCH  := torch==2.13.0

.PHONY: install demo test test-fast clean-store

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH)
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/vaepipe demo

test: $(STAMP)
	$(PY) -m pytest

# Skips the slow end-to-end tests (CI runs them all through `make test`).
test-fast: $(STAMP)
	$(PY) -m pytest -m "not slow"
