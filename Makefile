# BHP CTMS. `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Parallel test workers (pytest-xdist); each gets its own databases.
TEST_WORKERS ?= 2

.DEFAULT_GOAL := help

.PHONY: help
help: ## Show this list of targets
	@grep -hE '^[a-z][a-z-]*:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  make %-10s %s\n", $$1, $$2}'

$(BIN)/ctms: setup.py pyproject.toml
	$(PYTHON) -m venv $(VENV)
	# Pyramid still imports pkg_resources, which newer setuptools drop.
	$(BIN)/pip install --quiet --upgrade pip "setuptools>=69,<81" wheel
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error

bhp_ctms/static/vendor/nhsuk/nhsuk-frontend.min.css: node_modules/.package-lock.json
	npm run --silent build

.PHONY: install
install: $(BIN)/ctms bhp_ctms/static/vendor/nhsuk/nhsuk-frontend.min.css ## Create the virtualenv, install the project and build the front-end assets

.PHONY: run
run: install ## Migrate, load the demo study, and serve the web app with a worker (Ctrl-C stops both)
	$(BIN)/ctms -c development.ini run

.PHONY: test
test: install ## Run the whole test suite (PostgreSQL and Redis too when BHP_CTMS_TEST_* are set)
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile -p no:cacheprovider

.PHONY: benchmarks
benchmarks: install ## Run the audit trail's, the participant grid's and the REDCap import's benchmarks at full size and print their figures (see benchmarks/README.md)
	$(BIN)/python -m benchmarks.audit_verify
	$(BIN)/python -m benchmarks.audit_verify --backend sqlite
	$(BIN)/python -m benchmarks.audit_history
	$(BIN)/python -m benchmarks.audit_overhead
	$(BIN)/python -m benchmarks.participant_grid
	$(BIN)/python -m benchmarks.redcap_import
	$(BIN)/python -m benchmarks.crf_entry

.PHONY: lint
lint: install ## Check style, imports and types
	$(BIN)/ruff check bhp_ctms tests benchmarks
	$(BIN)/ruff format --check bhp_ctms tests benchmarks
	$(BIN)/mypy

.PHONY: format
format: install ## Format the code
	$(BIN)/ruff check --fix bhp_ctms tests benchmarks
	$(BIN)/ruff format bhp_ctms tests benchmarks

.PHONY: clean
clean: ## Remove the virtualenv, built assets and local databases
	rm -rf $(VENV) node_modules bhp_ctms/static/vendor var test-results
