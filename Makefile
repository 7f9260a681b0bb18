# srs — developer entry points. `make demo` and `make test` are the two that matter.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
SRS    := $(BIN)/srs

.DEFAULT_GOAL := help
.PHONY: help install up down status lint format model crds gitops typecheck test test-unit test-integration demo clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-17s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

install: $(VENV)/.installed ## create .venv and install srs with its dev tools

up: install ## start the local stack (Kafka + Kubernetes control plane); first run builds it
	$(SRS) dev up

down: ## stop the local stack
	@if [ -x $(SRS) ]; then $(SRS) dev down; fi

status: install ## what the local stack runs, and where
	$(SRS) dev status

lint: install ## ruff lint + format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install ## apply ruff's fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

model: install ## rebuild the offline classifier's shipped model (after editing its data, generator or code)
	$(BIN)/python -m agent_runtime.offline.training

crds: install ## regenerate crds/ from the pydantic models, and the chart's copies of CRDs and RBAC rules
	$(SRS) crds --write crds
	$(SRS) crds --write charts/srs-operator/crds
	$(BIN)/python -c 'import sys, yaml; docs = yaml.safe_load_all(open("operator/deploy/rbac.yaml")); \
	  role = next(d for d in docs if d["kind"] == "ClusterRole"); \
	  print("# Generated from operator/deploy/rbac.yaml by make crds; do not edit."); \
	  print(yaml.safe_dump(role["rules"], sort_keys=False), end="")' > charts/srs-operator/files/clusterrole-rules.yaml

gitops: install ## render the Argo CD health checks (gitops/argocd/install/, the snippet in docs/gitops.md)
	$(SRS) argocd --write gitops/argocd/install --doc docs/gitops.md

typecheck: install ## mypy (strict)
	$(BIN)/mypy

test: up ## run every test (unit, integration, e2e) against the local stack
	$(BIN)/pytest

test-unit: install ## only the tests that need no Kafka or Kubernetes
	$(BIN)/pytest -m unit

test-integration: up ## only the tests against the real broker and control plane
	$(BIN)/pytest -m "integration or e2e"

demo: install ## the whole system on the local stack: operator, agents, Kafka, sample tickets
	$(SRS) demo

clean: down ## stop the stack and remove .venv and .devstack
	rm -rf $(VENV) .devstack
