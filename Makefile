# handoffd — the two commands a newcomer needs:
#   make run    set everything up, build the default model on first use, start the daemon
#   make test   set everything up and run the whole test suite (what CI runs)
SHELL := /bin/bash
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup run test lint typecheck proto bench install-service clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then \
	  echo "NVIDIA GPU found: installing onnxruntime-gpu"; \
	  $(BIN)/python -m pip uninstall -q -y onnxruntime && $(BIN)/python -m pip install -q 'onnxruntime-gpu[cuda,cudnn]'; \
	fi
	@touch $(STAMP)

setup: $(STAMP)

run: setup
	$(BIN)/handoffctl model build-default
	$(BIN)/handoffd $(if $(CONFIG),--config $(CONFIG),)

test: setup
	$(BIN)/python -m pytest -q -ra

lint: setup
	$(BIN)/ruff check daemon tests bench
	$(BIN)/lint-imports

typecheck: setup
	$(BIN)/mypy

proto: setup
	$(BIN)/python -m grpc_tools.protoc -Iproto --python_out=daemon --pyi_out=daemon --grpc_python_out=daemon proto/handoffd/v1/*.proto

bench: setup
	$(BIN)/python bench/run_all.py

install-service:   ## as root: install the systemd unit, user, dirs and a venv in /opt/handoffd
	systemd/install.sh $(if $(DRY_RUN),--dry-run,)

clean:
	rm -rf $(VENV) build *.egg-info
