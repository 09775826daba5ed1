# Property streams: Beam pipelines on a local, Docker-free stack. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
RUNNER ?= PrismRunner
SERVICES ?=
UP_ARGS ?=
PYTEST_ARGS ?=
BENCH_ARGS ?=
RUN_ARGS ?=

.PHONY: help setup venv up down status logs topics run test test-unit lint format bench

help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-10s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)
	@echo "Variables: RUNNER=$(RUNNER) SERVICES='$(SERVICES)' PYTEST_ARGS='$(PYTEST_ARGS)'"

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

# Re-run pip only when the dependencies changed (pip keeps downloads in ~/.cache/pip).
$(VENV)/.installed: pyproject.toml | $(PY)
	$(PY) -m pip install -e '.[dev]'
	@touch $@

venv: $(VENV)/.installed ## Create .venv and install the project with its dev extra

setup: venv ## Install everything: venv + pip, Java jars (Maven, ~/.m2), Prism (go), redis (apt)
	$(PY) -m runners.install

up: ## Start the local stack (SERVICES='kafka redis' for some; UP_ARGS=--flink adds the Flink job server)
	$(PY) -m runners.local up $(SERVICES) $(UP_ARGS)

down: ## Stop every service of the local stack
	$(PY) -m runners.local down $(SERVICES)

status: ## Show what runs where
	$(PY) -m runners.local status

logs: ## Tail a service's log (SERVICES=kafka)
	$(PY) -m runners.local logs $(or $(SERVICES),kafka)

topics: ## (Re)create the topics of runners/topics.toml
	$(PY) -m runners.local topics

run: ## Run the main job on the local stack (RUNNER=PrismRunner|FlinkRunner, RUN_ARGS=...)
	$(PY) -m pipelines.passthrough --runner=$(RUNNER) $(RUN_ARGS)

test: ## Run all tests (unit + integration on the real local stack)
	$(PY) -m pytest -q $(PYTEST_ARGS)

test-unit: ## Run the tests that need no stack
	$(PY) -m pytest -q -m 'not integration' $(PYTEST_ARGS)

lint: ## ruff check + format check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: ## ruff fix + format
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: ## Benchmark a 100 000-record passthrough (RUNNER=PrismRunner|FlinkRunner)
	$(PY) -m bench.passthrough --runner=$(RUNNER) $(BENCH_ARGS)
