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

# The browser tests get a pytest process of their own: Playwright's synchronous API keeps an
# event loop running in the main thread for the whole session, which in-process tests of
# asyncio command-line tools and vLLM's start-up cannot share.
test: $(VENV)/.dev
	$(PY) -m ruff check .
	$(PY) -m pytest --ignore=tests/browser --durations=15
	$(PY) -m pytest tests/browser

lint: $(VENV)/.dev
	$(PY) -m ruff check .
