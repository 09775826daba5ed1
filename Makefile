# Property streams: Beam pipelines on a local, Docker-free stack. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
RUNNER ?= FlinkRunner
SERVICES ?=
UP_ARGS ?=
PYTEST_ARGS ?=
BENCH_ARGS ?=
LATENCY_ARGS ?=
RUN_ARGS ?=
# SECURE=1: Kafka with SASL_SSL + SCRAM-SHA-512, TLS and ACLs (runners.local up --secure).
SECURE ?=
SECURE_FLAG := $(if $(SECURE),--secure)

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

setup: venv ## Install everything: venv + pip, Java jars (Maven, ~/.m2), Prism + Toxiproxy (go), redis (apt), Flink distribution (PyPI)
	$(PY) -m runners.install

up: ## Start the local stack (SERVICES='kafka redis' for some; UP_ARGS=--flink adds the Flink job server; SECURE=1 secured Kafka)
	$(PY) -m runners.local up $(SERVICES) $(SECURE_FLAG) $(UP_ARGS)

down: ## Stop every service of the local stack
	$(PY) -m runners.local down $(SERVICES)

status: ## Show what runs where
	$(PY) -m runners.local status

logs: ## Tail a service's log (SERVICES=kafka)
	$(PY) -m runners.local logs $(or $(SERVICES),kafka)

topics: ## (Re)create the topics of runners/topics.toml
	$(PY) -m runners.local topics

run: setup ## Demo: stack up, simulate, run the property pipeline, live summary vs the oracle (RUNNER=FlinkRunner|PrismRunner, SECURE=1, RUN_ARGS=...)
	$(PY) -m tools.demo --runner=$(RUNNER) $(SECURE_FLAG) $(RUN_ARGS)

test: setup ## Run all tests (unit + integration on the real local stack)
	$(PY) -m pytest -q $(PYTEST_ARGS)

test-unit: ## Run the tests that need no stack
	$(PY) -m pytest -q -m 'not integration' $(PYTEST_ARGS)

lint: ## ruff check + format check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: ## ruff fix + format
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: setup ## Throughput side by side (bench.compare), then latency at 50 % load (bench.latency) (BENCH_ARGS='--small')
	@# Latency runs even when a throughput run differed from the oracle; the exit code keeps both.
	$(PY) -m bench.compare $(BENCH_ARGS); rc=$$?; \
	$(PY) -m bench.latency $(BENCH_ARGS) $(LATENCY_ARGS) && exit $$rc

# --- Dataflow (runners/dataflow/README.md) -------------------------------------------------------
# dataflow-dry-run needs no GCP; dataflow-template and dataflow-run need gcloud, a project with
# the Dataflow, Cloud Build and Artifact Registry APIs on, an Artifact Registry Docker repository
# and a bucket.
GCP_PROJECT ?=
GCP_REGION ?= us-central1
GCS_BUCKET ?=
AR_REPO ?= property-streams
TEMPLATE_TAG ?= latest
TEMPLATE_IMAGE ?= $(GCP_REGION)-docker.pkg.dev/$(GCP_PROJECT)/$(AR_REPO)/property-pipeline:$(TEMPLATE_TAG)
TEMPLATE_FILE ?= gs://$(GCS_BUCKET)/templates/property-pipeline.json
# gcloud splits --parameters on ','; start with ^~^ to split on '~' when a value holds commas.
TEMPLATE_PARAMS ?=
DATAFLOW_ARGS ?= --bootstrap_servers=broker:9092

.PHONY: dataflow-dry-run dataflow-template dataflow-run

dataflow-dry-run: ## Build the Dataflow job offline, print its spec (DATAFLOW_ARGS=pipeline flags)
	$(PY) -m runners.dataflow dry-run -- --setup_file=./setup.py $(DATAFLOW_ARGS)

dataflow-template: ## Build+push the flex template image, write its spec (GCP_PROJECT, GCS_BUCKET)
	@test -n "$(GCP_PROJECT)" -a -n "$(GCS_BUCKET)" || { echo "set GCP_PROJECT and GCS_BUCKET"; exit 2; }
	gcloud builds submit . --project=$(GCP_PROJECT) --config=runners/dataflow/cloudbuild.yaml \
	  --substitutions=_IMAGE=$(TEMPLATE_IMAGE)
	gcloud dataflow flex-template build $(TEMPLATE_FILE) --project=$(GCP_PROJECT) \
	  --image=$(TEMPLATE_IMAGE) --sdk-language=PYTHON --metadata-file=runners/dataflow/metadata.json

dataflow-run: ## Launch the flex template (TEMPLATE_PARAMS='^~^bootstrap_servers=h1:9092,h2:9092~...')
	@test -n "$(GCP_PROJECT)" -a -n "$(GCS_BUCKET)" -a -n "$(TEMPLATE_PARAMS)" || { echo "set GCP_PROJECT, GCS_BUCKET and TEMPLATE_PARAMS"; exit 2; }
	gcloud dataflow flex-template run property-pipeline-$$(date +%Y%m%d-%H%M%S) \
	  --project=$(GCP_PROJECT) --region=$(GCP_REGION) --template-file-gcs-location=$(TEMPLATE_FILE) \
	  --staging-location=gs://$(GCS_BUCKET)/staging --temp-location=gs://$(GCS_BUCKET)/tmp \
	  --parameters='$(TEMPLATE_PARAMS)'
