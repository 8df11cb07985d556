# Tradelane — the two commands a newcomer needs: `make run` and `make test`.
# Everything else (venv, pip, Kafka jars via Maven) is installed on first use.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
SPECS := tools/asyncapi-specs
SPECS_STAMP := $(SPECS)/node_modules/.installed-stamp
IMAGE ?= tradelane:$(shell git rev-parse --short HEAD 2>/dev/null || echo dev)

.PHONY: install run test test-unit test-e2e bench lint format schemas image k8s dashboards k8s-check kafka-up kafka-down clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

# The AsyncAPI JSON Schemas (npm package @asyncapi/specs, locked) that the contract tests
# validate schemas/asyncapi.json against; Node is used for nothing else.
$(SPECS_STAMP): $(SPECS)/package.json $(SPECS)/package-lock.json
	npm ci --prefix $(SPECS) --ignore-scripts --no-audit --no-fund
	touch $(SPECS_STAMP)

install: $(STAMP) $(SPECS_STAMP)  ## create .venv and install Tradelane with its dev tools

run: install  ## start Kafka, the four services and a demo shop; Ctrl-C stops all
	$(PY) -m tools.demo

test: install  ## the whole suite: unit, integration and end-to-end over a real broker
	$(PY) -m pytest

test-unit: install
	$(PY) -m pytest tests/unit

test-e2e: install
	$(PY) -m pytest tests/integration tests/e2e

# Not part of `make test`: ~10-15 minutes on both backends (docs/performance.md).
# BENCH_ARGS, e.g. `--quick`, `--backend sqlite`, `--workers 2 --partitions 8`.
bench: install  ## throughput, latency and cost against the raw Kafka chains; writes bench/results/
	$(PY) -m tools.bench $(BENCH_ARGS)

lint: install  ## ruff (lint + format check) and mypy
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

schemas: install  ## regenerate schemas/ (JSON Schemas, asyncapi.json) from the models
	$(PY) -m tools.schemas

k8s: install  ## regenerate deploy/k8s/components/strimzi (KafkaTopic, KafkaUser) from the registry
	$(PY) -m tools.k8s

dashboards: install  ## regenerate deploy/k8s/components/grafana/dashboards (the Grafana dashboards)
	$(PY) -m tools.dashboards

k8s-check: install  ## render every overlay and component, validate every object, check consistency
	$(PY) -m tools.k8s.toolchain  # kustomize (Go module) and the CRDs (Go module, Maven), once
	$(PY) -m pytest -q tests/k8s

# One image for every service: `docker run IMAGE services.pricing`. A build target that
# cannot build fails: without an engine this stops with exit 2 rather than pretend.
image:  ## build the service image (Dockerfile) where a Docker engine answers
	@docker info >/dev/null 2>&1 || { \
	  echo "make image: no Docker engine answers (docker info failed); nothing was built." >&2; \
	  echo "Start one (or set DOCKER_HOST) and run make image again." >&2; exit 2; }
	docker build -t $(IMAGE) .
	@echo "built $(IMAGE): docker run --rm $(IMAGE) services.catalog (or services.pricing, services.approvals, services.fulfillment)"

kafka-up: install  ## a dev broker on 127.0.0.1:9092 (data in var/kafka)
	$(PY) -m tools.local_kafka up

kafka-down:
	$(PY) -m tools.local_kafka down

clean: kafka-down
	rm -rf var
