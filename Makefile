# Two commands on a fresh machine: `make run` starts the app, `make test` runs the tests.
VENV ?= .venv
PY := $(VENV)/bin/python
ARGS ?=

.PHONY: run test test-fast lint typecheck

$(VENV)/.app: scripts/setup.sh requirements.txt requirements-cpu.txt requirements-gpu.txt
	scripts/setup.sh $(VENV)
	touch $@

$(VENV)/.dev: $(VENV)/.app requirements-dev.txt
	scripts/setup.sh $(VENV) --dev
	touch $@

run: $(VENV)/.app
	$(PY) app.py $(ARGS)

# The browser tests get a pytest process of their own: Playwright's synchronous API keeps an
# event loop running in the main thread for the whole session, which in-process tests of
# asyncio command-line tools and vLLM's start-up cannot share.
test: $(VENV)/.dev
	$(PY) -m ruff check .
	$(PY) -m mypy
	$(PY) -m pytest --ignore=tests/browser --durations=40
	$(PY) -m pytest tests/browser

# About a minute: the checks and the tests that need neither a vLLM engine nor a browser.
test-fast: $(VENV)/.dev
	$(PY) -m ruff check .
	$(PY) -m mypy
	$(PY) -m pytest -m "not engine and not browser" --ignore=tests/browser

lint: $(VENV)/.dev
	$(PY) -m ruff check .

# Strict for phi4ui.core and phi4ui.engines, a baseline elsewhere (pyproject.toml).
typecheck: $(VENV)/.dev
	$(PY) -m mypy
