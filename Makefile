# regdakit: set up a virtual environment, open the notebooks, test everything.
#
#   make lab        set up .venv, then open notebooks/ in JupyterLab
#   make test       set up .venv and Chromium, then ONE pytest run: doctests in
#                   regdakit/, unit tests in tests/, every notebook (nbval, fast
#                   mode) and one notebook in JupyterLab in headless Chromium
#   make sources    rebuild notebooks/*.ipynb from their percent-format sources
#                   in notebooks/src/ (jupytext; unchanged cells keep outputs)
#   make notebooks  re-execute every notebook in place at full size and strip
#                   volatile metadata (what gets committed)
#   make lint       ruff check and ruff format --check
#   make clean      remove .venv
#   make browser    install Debian's chromium + chromium-driver if missing
#
# Knobs (make VAR=value ...):
#   PYTHON      interpreter that creates .venv (default python3)
#   TORCH_SPEC  what pip installs for torch before the package, default
#               torch==2.13.0. A GPU user picks a build, e.g.
#                 make lab TORCH_SPEC="torch==2.5.1"
#               or TORCH_SPEC=skip to keep whatever torch .venv already has.
#               The choice is remembered in .venv/.torch-spec, so a later
#               plain `make test` does not swap the torch build back.
#   TORCH_INDEX_URL  pip --index-url for the torch install only. Default: on
#               Linux without an NVIDIA GPU, PyTorch's CPU wheel index (PyPI's
#               Linux torch is the CUDA build, several GB); elsewhere none, so
#               pip's own index (the CUDA build on an NVIDIA machine, the CPU
#               build on macOS). `make torch-plan` prints the choice.
#   PYTEST_ARGS extra pytest arguments, e.g. PYTEST_ARGS="-x -k heatmaps"
#   LAB_ARGS    extra jupyter lab arguments, e.g. LAB_ARGS=--no-browser

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TORCH_SPEC_FILE := $(VENV)/.torch-spec
DEFAULT_TORCH_SPEC := torch==2.13.0

# Not given on the command line or in the environment: reuse this venv's choice.
RECORDED_TORCH_SPEC := $(strip $(shell cat $(TORCH_SPEC_FILE) 2>/dev/null))
ifeq ($(origin TORCH_SPEC),undefined)
TORCH_SPEC := $(or $(RECORDED_TORCH_SPEC),$(DEFAULT_TORCH_SPEC))
endif
# A different TORCH_SPEC than the one .venv was set up with reruns the set-up.
ifneq ($(strip $(TORCH_SPEC)),$(RECORDED_TORCH_SPEC))
TORCH_SPEC_CHANGED := FORCE
endif
# The torch build: PyPI's Linux wheels are CUDA builds (torch plus ~18 nvidia-* packages, several GB), so
# on Linux without an NVIDIA GPU the torch install reads PyTorch's CPU wheel index instead. HAS_NVIDIA and
# TORCH_INDEX_URL can be given on the command line to override the detection.
CPU_TORCH_INDEX := https://download.pytorch.org/whl/cpu
UNAME_S := $(shell uname -s)
HAS_NVIDIA ?= $(shell { nvidia-smi -L || cat /proc/driver/nvidia/version; } >/dev/null 2>&1 && echo yes)
ifeq ($(origin TORCH_INDEX_URL),undefined)
ifeq ($(UNAME_S)-$(HAS_NVIDIA),Linux-)
TORCH_INDEX_URL := $(CPU_TORCH_INDEX)
endif
endif

NOTEBOOK_DIR := notebooks
# What tests/test_browser.py drives: Debian's packages, where it looks for them.
BROWSER_PACKAGES := chromium chromium-driver
CHROMIUM := /usr/bin/chromium
CHROMEDRIVER := /usr/bin/chromedriver
NBVAL_CELL_TIMEOUT ?= 600
PYTEST_ARGS ?=
LAB_ARGS ?=

.PHONY: help lab test sources notebooks lint clean browser torch-plan FORCE

help:
	@sed -n '3,13p' Makefile | sed 's/^# \{0,1\}//'

# --- set-up ---------------------------------------------------------------

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# The sentinel: a second `make test` reinstalls nothing unless pyproject.toml,
# this Makefile or TORCH_SPEC changed. torch goes first so that the package's
# unpinned "torch>=..." is already satisfied (and no multi-GB CUDA build is
# pulled in by accident).
# An index that cannot be reached (a machine whose only network is a local mirror, like CI here) is left
# out with a one-line notice rather than retried for minutes: pip then installs from its configured indexes.
$(STAMP): pyproject.toml Makefile $(TORCH_SPEC_CHANGED) | $(BIN)/python
ifneq ($(TORCH_SPEC),skip)
	@index='$(TORCH_INDEX_URL)'; \
	if [ -n "$$index" ] && ! $(BIN)/python -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=10)" "$$index/" 2>/dev/null; then \
		echo "make: $$index cannot be reached: torch comes from pip's configured indexes"; index=; fi; \
	echo "$(BIN)/python -m pip install --quiet $${index:+--index-url $$index} '$(TORCH_SPEC)'"; \
	$(BIN)/python -m pip install --quiet $${index:+--index-url "$$index"} '$(TORCH_SPEC)'
endif
	$(BIN)/python -m pip install --quiet -e '.[notebooks,dev,course]'
	@echo '$(TORCH_SPEC)' > $(TORCH_SPEC_FILE)
	@touch $@

# The browser test's Chromium and ChromeDriver, from Debian, not from pip (no
# browser download: this step and the test reach no network but apt's). Nothing
# to do when both are there; else apt-get installs them as root or with
# passwordless sudo, refreshing the package lists only if the first try fails.
# Never fails the build: where it cannot install, it says so in one line and
# tests/test_browser.py skips with its own message.
browser:
	@if [ -x $(CHROMIUM) ] && [ -x $(CHROMEDRIVER) ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then sudo=; \
	elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo='sudo -n'; \
	else echo "make browser: cannot install $(BROWSER_PACKAGES) (not root, no passwordless sudo):" \
		"tests/test_browser.py will skip"; exit 0; fi; \
	if ! command -v apt-get >/dev/null; then \
		echo "make browser: no apt-get to install $(BROWSER_PACKAGES): tests/test_browser.py will skip"; exit 0; fi; \
	install="$$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(BROWSER_PACKAGES)"; \
	echo "make browser: installing $(BROWSER_PACKAGES) with apt-get"; \
	$$install || { $$sudo apt-get update -qq && $$install; } \
		|| echo "make browser: apt-get could not install $(BROWSER_PACKAGES): tests/test_browser.py will skip"

# --- targets --------------------------------------------------------------

# What the set-up would install for torch on this machine, as KEY=value lines (tests/test_install.py reads it).
torch-plan:
	@echo "HAS_NVIDIA=$(HAS_NVIDIA)"
	@echo "TORCH_SPEC=$(TORCH_SPEC)"
	@echo "TORCH_INDEX_URL=$(TORCH_INDEX_URL)"

# Jupyter refuses to run as root without --allow-root (containers, CI boxes).
lab: $(STAMP)
	$(BIN)/jupyter lab $(NOTEBOOK_DIR)/ $(if $(filter 0,$(shell id -u)),--allow-root) $(LAB_ARGS)

# One pytest run. Explicit paths replace pyproject's testpaths; its addopts
# (--doctest-modules) make regdakit/ contribute its doctests, and nbval
# collects notebooks/**/*.ipynb (pytest never enters .ipynb_checkpoints).
# Lax mode: every cell must run without error; only cells marked
# "# NBVAL_CHECK_OUTPUT" have their output compared, after sanitising.
test: $(STAMP) browser
	REGDAKIT_FAST=1 PYDEVD_DISABLE_FILE_VALIDATION=1 \
	$(BIN)/pytest regdakit tests $(wildcard $(NOTEBOOK_DIR)) \
		--nbval-lax --nbval-current-env \
		--nbval-cell-timeout=$(NBVAL_CELL_TIMEOUT) \
		--nbval-sanitize-with .ci/nbval_sanitize.cfg \
		--ignore-glob='*/.ipynb_checkpoints/*' \
		$(PYTEST_ARGS)

sources: $(STAMP)
	$(BIN)/python tools/build_notebooks.py

# Full size (REGDAKIT_FAST=0, overriding CI=true), outputs kept, volatile
# metadata stripped by tools/strip_notebook.py.
notebooks: $(STAMP)
	PYDEVD_DISABLE_FILE_VALIDATION=1 $(BIN)/python tools/run_notebooks.py

lint: $(STAMP)
	$(BIN)/ruff check $(wildcard regdakit tests benchmarks tools data_samples)
	$(BIN)/ruff format --check $(wildcard regdakit tests benchmarks tools data_samples)

clean:
	rm -rf $(VENV)

FORCE:
