# Two commands on a fresh machine: `make run` starts the app, `make test` runs the tests.
VENV ?= .venv
PY := $(VENV)/bin/python
ARGS ?=

.PHONY: run test lint

$(VENV)/.app: scripts/setup.sh requirements.txt requirements-cpu.txt requirements-gpu.txt
	scripts/setup.sh $(VENV)
	touch $@

$(VENV)/.dev: $(VENV)/.app requirements-dev.txt
	scripts/setup.sh $(VENV) --dev
	touch $@

run: $(VENV)/.app
	$(PY) app.py $(ARGS)

test: $(VENV)/.dev
	$(PY) -m ruff check .
	$(PY) -m pytest

lint: $(VENV)/.dev
	$(PY) -m ruff check .
