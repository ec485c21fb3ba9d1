# Development tasks. `make` alone lists them.
#
# Needs only Python 3.11+ and make: every target installs what it uses into .venv/.
# Production does not use this file (see README, "Production").

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

# Development defaults; a value set by the caller wins. DEBUG=1 gives the built-in
# development SECRET_KEY and serves static files without collectstatic.
export DEBUG ?= 1

.DEFAULT_GOAL := help
.PHONY: help venv install run test faults fuzz lint types check fmt lock clean bench

help: ## list the targets
	@echo "make <target>:"
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-8s %s\n", $$1, $$2}'

venv: $(STAMP) ## create .venv and install requirements/dev.lock (again only when the lock changes)
install: $(STAMP) ## same as venv

$(STAMP): requirements/dev.lock
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "Python 3.11 or newer is needed (found: $$($(PYTHON) --version 2>&1)); try PYTHON=python3.12" >&2; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || \
		{ echo "Could not create $(VENV); on Debian/Ubuntu: apt-get install python3-venv" >&2; exit 1; }
	$(BIN)/python -m pip install --disable-pip-version-check -q -r requirements/dev.lock
	@touch $@

run: install ## start web, Celery worker and scheduler on embedded defaults (Ctrl-C stops all)
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py seed_demo
	@echo ""
	@echo "=================================================================="
	@echo "  Signup page   http://127.0.0.1:8000/"
	@echo "  Admin         http://127.0.0.1:8000/admin/   (staff login above)"
	@echo "  Outbox        http://127.0.0.1:8000/outbox/  (every email sent)"
	@echo "  Ctrl-C stops the web server, the worker and the scheduler."
	@echo "=================================================================="
	@echo ""
	PATH="$(CURDIR)/$(BIN):$$PATH" exec $(BIN)/honcho -f Procfile.dev start

# Tests keep their SQLite file, broker folders, cache and outbox under var/test/, apart
# from a `make run` going on at the same time (DATABASE_URL etc. still win when set).
test: export VAR_DIR ?= $(CURDIR)/var/test
test: install ## run the test suite (PYTEST_ARGS="-k signup" to pick tests)
	$(BIN)/pytest $(PYTEST_ARGS)

# The fault tests (tests/faults/) are in `make test` too; this runs only them and prints
# their table: fault, recipients, sent, duplicates, lost.
faults: export VAR_DIR ?= $(CURDIR)/var/test
faults: install ## only the fault tests (tests/faults/), then their table
	$(BIN)/pytest -m faults $(PYTEST_ARGS)

# The hostile-input suite (tests/fuzz) with many more examples than the normal run's `ci` budget.
fuzz: export VAR_DIR ?= $(CURDIR)/var/test
fuzz: install ## hostile-input property tests, deep budget (FUZZ_PROFILE=deep; ci is the default in `make test`)
	FUZZ_PROFILE=$${FUZZ_PROFILE:-deep} $(BIN)/pytest -m fuzz $(PYTEST_ARGS)

lint: install ## ruff lint and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

types: install ## mypy with django-stubs
	$(BIN)/mypy .

check: lint types test ## lint, types and tests

fmt: install ## format the code and apply ruff's safe fixes
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

lock: install ## regenerate requirements/*.lock from pyproject.toml (uv, Python 3.11)
	@test -x $(BIN)/uv || $(BIN)/python -m pip install --disable-pip-version-check -q uv
	$(BIN)/uv pip compile pyproject.toml --python-version 3.11 -o requirements/base.lock
	$(BIN)/uv pip compile pyproject.toml --extra dev --python-version 3.11 -o requirements/dev.lock

# The bench compares with django-newsletter, installed into a venv of its own (never .venv).
PEER_VENV := var/bench/venv-peer
BENCH_ARGS ?=

$(PEER_VENV)/.installed: bench/peer/requirements.txt
	@test -x $(PEER_VENV)/bin/python || $(PYTHON) -m venv $(PEER_VENV)
	$(PEER_VENV)/bin/python -m pip install --disable-pip-version-check -q -r bench/peer/requirements.txt
	@touch $@

bench: install $(PEER_VENV)/.installed ## throughput, memory, latency on this machine (BENCH_ARGS=--full: 1M)
	$(BIN)/python -m bench $(BENCH_ARGS)

clean: ## remove .venv, caches and test leftovers (keeps var/, the local data; delete it to start again)
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache var/test
	find . -name __pycache__ -type d -not -path './$(VENV)/*' -prune -exec rm -rf {} +
