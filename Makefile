# Two commands matter: `make run` and `make test`. Both set themselves up on a fresh clone.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
NODE   := node_modules/.installed
# checkov pins an old pycep-parser: it gets a virtualenv of its own.
CHECKOV_VENV  := .venv-checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed

.PHONY: venv lint test run sandbox bench clean

$(STAMP): requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $(STAMP)

venv: $(STAMP)

# Azurite (Azure Storage emulator), pinned in package.json / package-lock.json.
$(NODE): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $(NODE)

$(CHECKOV_STAMP): requirements-infra.txt
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-infra.txt
	touch $(CHECKOV_STAMP)

lint: $(STAMP) $(CHECKOV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/python tools/generate_sync_client.py --check
	$(BIN)/python tools/checkov_bicep.py infra

test: lint $(NODE)
	$(BIN)/python -m pytest

# make run LOCAL_STORAGE_DIR=.azurite   Azurite keeps its data in .azurite (default: in memory)
# make sandbox                          the simulators and an Azurite in a process of their own;
# make run LOCAL_SANDBOX=apart           then the host uses them: kill and restart it at will
LOCAL_STORAGE_DIR ?=
LOCAL_SANDBOX ?=
export LOCAL_STORAGE_DIR LOCAL_SANDBOX

run: $(STAMP) $(NODE)
	$(BIN)/python -m local

sandbox: $(STAMP) $(NODE)
	$(BIN)/python -m local.sandbox

bench: $(STAMP) $(NODE)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) $(CHECKOV_VENV) node_modules .mypy_cache .ruff_cache .pytest_cache .hypothesis
