# srs — developer entry points. `make demo` and `make test` are the two that matter.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
SRS    := $(BIN)/srs

.DEFAULT_GOAL := help
.PHONY: help install lock up down status llm-up llm-down llm-status lint format model crds gitops typecheck test test-unit \
	test-integration demo clean observability observability-tools \
	image kind-up kind-down kind-status test-kind demo-kind terraform-test

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-17s %s\n", $$1, $$2}'

# Every Python dependency comes from a lock file with hashes (`make lock` writes them from
# pyproject.toml): requirements-dev.lock for the venv, requirements.lock (its runtime part,
# the same versions) for the image. srs itself is installed on top, without dependencies,
# built by the locked setuptools.
# The offline classifier's compiled step (native/, Rust) goes in last: built by the locked
# maturin with the machine's cargo, once per source content (cached in ~/.cache/srs/native).
NATIVE_SOURCES := native/Cargo.toml native/Cargo.lock native/pyproject.toml $(wildcard native/src/*.rs native/srs_native/*.py*)
$(VENV)/.installed: pyproject.toml requirements-dev.lock $(NATIVE_SOURCES)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r requirements-dev.lock
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	$(BIN)/python -m devstack.native > /dev/null
	@touch $@

install: $(VENV)/.installed ## create .venv with exactly the locked versions (requirements-dev.lock) and srs

# pip-compile keeps what is pinned and resolves only what pyproject.toml changed;
# `make lock UPGRADE=1` moves every pin to the newest release instead.
LOCK_FLAGS := --quiet --generate-hashes --allow-unsafe --strip-extras --no-emit-index-url --no-emit-find-links $(if $(UPGRADE),--upgrade)
lock: ## re-resolve requirements-dev.lock and requirements.lock from pyproject.toml (UPGRADE=1: newest releases)
	@test -x $(BIN)/pip-compile || { echo "make install first"; exit 1; }
	$(BIN)/pip-compile $(LOCK_FLAGS) --extra dev -o requirements-dev.lock pyproject.toml
	# The runtime lock holds the dev lock's versions (the image and the venv run the same code).
	$(BIN)/pip-compile $(LOCK_FLAGS) --constraint requirements-dev.lock -o requirements.lock pyproject.toml

BROKERS ?=
up: install ## start the local stack (Kafka + Kubernetes control plane); first run builds it (BROKERS=3: three Kafka brokers)
	$(SRS) dev up $(if $(BROKERS),--brokers $(BROKERS))

down: ## stop the local stack (and the local model server)
	@if [ -x $(SRS) ]; then $(SRS) llm down; $(SRS) dev down; fi

status: install ## what the local stack runs, and where
	$(SRS) dev status

llm-up: install ## a real local model on loopback (llama.cpp's server, Gemma 3 270M); first run builds it (~15-25 min)
	$(SRS) llm up

llm-down: ## stop the local model server
	@if [ -x $(SRS) ]; then $(SRS) llm down; fi

llm-status: install ## where the local model server runs, and whether it answers
	$(SRS) llm status

CARGO ?= $(shell command -v cargo || echo $(HOME)/.cargo/bin/cargo)

lint: install ## ruff lint + format check, import direction (lint-imports, contracts in pyproject.toml), actionlint, rustfmt
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(CARGO) fmt --check --manifest-path native/Cargo.toml
	$(BIN)/lint-imports --no-cache
	@tools=$$($(SRS) kind tools actionlint) && $$tools/actionlint -color=false .github/workflows/*.yml && echo "actionlint: ok"

format: install ## apply ruff's fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

model: install ## rebuild the offline classifier's shipped model (after editing its data, generator or code)
	$(BIN)/python -m srs_training.training

crds: install ## regenerate crds/ from the pydantic models, and the chart's copies of CRDs and RBAC rules
	$(SRS) crds --write crds
	$(SRS) crds --write charts/srs-operator/crds
	$(BIN)/python -c 'import yaml; docs = list(yaml.safe_load_all(open("operator/deploy/rbac.yaml"))); \
	  roles = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ClusterRole"}; \
	  files = {"srs-operator": "clusterrole-rules.yaml", "srs-operator-secrets": "secrets-clusterrole-rules.yaml", \
	    "srs-operator-kafka-credentials": "kafka-credentials-clusterrole-rules.yaml"}; \
	  [open("charts/srs-operator/files/" + f, "w").write("# Generated from operator/deploy/rbac.yaml by make crds; do not edit.\n" \
	    + yaml.safe_dump(roles[n]["rules"], sort_keys=False)) for n, f in files.items()]'

gitops: install ## render the Argo CD health checks (gitops/argocd/install/, the snippet in docs/gitops.md)
	$(SRS) argocd --write gitops/argocd/install --doc docs/gitops.md

observability: install ## render the Grafana dashboards (charts/srs-operator/files/dashboards/) and the metrics reference (docs/observability.md)
	$(SRS) observability --write charts/srs-operator/files/dashboards --doc docs/observability.md

typecheck: install ## mypy (strict)
	$(BIN)/mypy

observability-tools: install ## Debian's Prometheus/promtool and Jaeger (built from Go sources, cached): what the observability tests run
	$(BIN)/python -m devstack.observability

# Test files share the local stack peacefully: three workers take a file at a time (most
# tests wait on Kafka, Kubernetes or a process, not on the CPU). The `serial` ones (a private
# copy of the stack, or stopping part of the shared one) run alone afterwards.
PARALLEL := -n 3 --dist loadfile
test: up observability-tools llm-up ## run every test (unit, integration, e2e) against the local stack and the local model
	$(BIN)/pytest -m "not serial" $(PARALLEL)
	$(BIN)/pytest -m serial

test-unit: install ## only the tests that need no Kafka or Kubernetes
	$(BIN)/pytest -m unit

test-integration: up observability-tools llm-up ## only the tests against the real broker and control plane
	$(BIN)/pytest -m "(integration or e2e) and not serial" $(PARALLEL)
	$(BIN)/pytest -m "(integration or e2e) and serial"

terraform-test: up ## terraform/: fmt, validate, tofu test, apply+destroy on moto and the local stack (builds OpenTofu first)
	$(BIN)/pytest -m terraform tests/terraform

LLM ?=
demo: install ## the whole system on the local stack: operator, agents, Kafka, sample tickets (LLM=local: specialists draft with the local model)
	$(SRS) demo $(if $(filter local,$(LLM)),--llm local)

BASE_IMAGE ?=
image: install ## build the srs image (wheels built on the host; BASE_IMAGE=python:3.11-slim where a registry is at hand)
	$(SRS) image $(if $(BASE_IMAGE),--base $(BASE_IMAGE))

kind-up: install ## a kind cluster with Kafka, KEDA and the operator (Helm), every image built here (LLM=local: a model server too; KEDA=no: no KEDA)
	$(SRS) kind up $(if $(filter local,$(LLM)),--llm) $(if $(filter no,$(KEDA)),--no-keda)

kind-down: ## remove the kind cluster, its containers and network
	@if [ -x $(SRS) ]; then $(SRS) kind down; fi

kind-status: install ## node, Kafka, KEDA and operator readiness on the kind cluster
	$(SRS) kind status

test-kind: install ## the suite only a real kubelet can prove, on the kind cluster (with the in-cluster model server)
	$(SRS) kind up --llm
	$(BIN)/pytest -m kind tests/kind

demo-kind: kind-up ## the demo on the kind cluster: agents as real pods of the srs image
	$(SRS) demo --kind

clean: down ## stop the stack and remove .venv and .devstack
	rm -rf $(VENV) .devstack
