# Two commands: `make demo` and `make test`. Each creates .venv on first use and
# installs what it needs; later runs reuse it (a stamp file tracks the inputs).
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
RUNTIME_STAMP := $(VENV)/.runtime-installed
TEST_STAMP := $(VENV)/.test-installed
export ROS_AUTOMATIC_DISCOVERY_RANGE := LOCALHOST
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: demo test bench clean-venv

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(RUNTIME_STAMP): requirements.txt setup.py | $(BIN)/python
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -r requirements.txt
	$(BIN)/pip install -q --no-deps -e .
	touch $@

$(TEST_STAMP): $(RUNTIME_STAMP) requirements-test.txt requirements-rlds.txt
	$(BIN)/pip install -q -r requirements-test.txt -r requirements-rlds.txt
	# The official V-JEPA 2 model code, used by the tests as an independent oracle.
	# --no-deps: its declared timm/torchvision deps are not needed for the model
	# classes (the tests provide timm's drop_path) and torchvision has no CPU build here.
	$(BIN)/pip install -q --no-deps cc-vjepa2==0.0.3
	touch $@

demo: $(RUNTIME_STAMP)
	$(BIN)/vjepa-wm demo

test: $(TEST_STAMP)
	$(BIN)/python -m pytest -q tests

bench: $(RUNTIME_STAMP)
	$(BIN)/vjepa-wm bench encoder

clean-venv:
	rm -rf $(VENV)
