# The two commands of the README are `make up` and `make test`; the rest build on them.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
# Tests and CI read the data we are given beside the checkout; users elsewhere download it.
export NAB_DATA_DIR ?= $(wildcard $(CURDIR)/../shared/data/nab)
export REFERENCE_MODEL_DIR ?= $(wildcard $(CURDIR)/../shared/reference-model)

.PHONY: up test lint redis-cli train evaluate simulate bench deploy down clean

$(VENV)/.local: requirements/local.txt requirements/mqtt-bridge.txt shared/requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements/local.txt
	touch $@

$(VENV)/.dev: $(VENV)/.local requirements/dev.txt
	$(PY) -m pip install --quiet -r requirements/dev.txt
	touch $@

up: $(VENV)/.local          ## Redis + model + the three functions on http://127.0.0.1:8080
	$(PY) -m infra.local $(ARGS)

test: lint $(VENV)/.dev     ## lint and types, then the whole suite against a real Redis it starts
	$(PY) -m pytest -q $(PYTEST_ARGS)

lint: $(VENV)/.dev          ## ruff and mypy (settings in pyproject.toml)
	$(PY) -m ruff check .
	$(PY) -m mypy

train: $(VENV)/.dev         ## retrain the model into models/modelo/
	$(PY) -m models.train $(ARGS)

evaluate: $(VENV)/.dev      ## stream the NAB series through detectar and score it
	$(PY) -m infra.evaluate $(ARGS)

redis-cli: $(VENV)/.local   ## redis-cli on the running `make up`'s Redis (ARGS="TS.INFO mediciones")
	$(PY) -m infra.local.redis_cli $(ARGS)

simulate: $(VENV)/.local    ## sensors with injected anomalies -> detectar -> report (needs make up)
	$(PY) -m infra.simulator $(ARGS)

bench: $(VENV)/.dev         ## throughput and latency of the local stack
	$(PY) -m infra.bench $(ARGS)

deploy:                     ## Docker Swarm + OpenFaaS (needs a Docker engine and faas-cli)
	infra/deploy.sh

down:                       ## remove everything deploy created (ARGS=--purge: the data too)
	infra/down.sh $(ARGS)

clean:
	rm -rf $(VENV) .cache .pytest_cache .hypothesis
