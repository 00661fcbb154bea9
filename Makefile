# The two commands: `make run` and `make test`. Everything else is a step of those.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= $(shell for p in python3.13 python3.12 python3.11 python3; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' && { echo $$p; break; }; done)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEVSTACK := $(PY) deploy/local/devstack.py

.PHONY: help
help:
	@echo "make run    set everything up and run the whole platform (Ctrl-C stops it)"
	@echo "make test   set everything up and run every test against real Kafka and PostgreSQL"
	@echo "make lint   ruff check, ruff format --check, mypy --strict"
	@echo "make docs   regenerate docs/asyncapi/ and docs/settings.md from the code"
	@echo "make demo   with make run going: two minutes of realistic traffic from every demo branch (watch http://127.0.0.1:8005/)"
	@echo "make fuzz-api   Schemathesis, 1,000 requests per API operation, on the test stack"
	@echo "make backup / make restore FROM=dir   every schema and the consumer offsets (docs/operations.md)"
	@echo "make check-alerts   promtool on deploy/monitoring/ (builds promtool with Go the first time)"
	@echo "make image-smoke   build the image and run the platform from it (needs docker or podman)"
	@echo "make infra-up / infra-down [STACK=dev|test]   local Kafka and PostgreSQL only"

$(STAMP): pyproject.toml requirements.lock
	@test -n "$(PYTHON)" || { echo "Python 3.11 or newer is required"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.lock
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

.PHONY: venv
venv: $(STAMP)

STACK ?= dev

.PHONY: infra-up
infra-up: $(STAMP)
	$(DEVSTACK) up --stack $(STACK)

.PHONY: infra-down
infra-down: $(STAMP)
	$(DEVSTACK) down --stack $(STACK)

# SCALE="routing=2 notify=3": instances per service (docs/operations.md, "Scaling").
.PHONY: run
run: $(STAMP)
	$(PY) deploy/local/run.py --scale "$(SCALE)"

# With `make run` going in another terminal: submissions over HTTP and Kafka, staff
# actions, feedback, late cases and service volumes from every pack's demo branch.
.PHONY: demo
demo: $(STAMP)
	$(PY) deploy/local/demo.py

# The benchmark: the real platform on the test stack, measured, with Kafka, aiokafka and
# asyncpg baselines (docs/performance.md). BENCH_ARGS="--seconds 300 --rate 20 --profile".
.PHONY: bench
bench: $(STAMP)
	$(PY) bench/run.py $(BENCH_ARGS)

# Build the image and run the whole platform from it, every service a container, against
# the dev stack (needs docker or podman; docs/operations.md, "Checking the image").
# SMOKE_ARGS="--engine podman --minutes 2".
.PHONY: image-smoke
image-smoke: $(STAMP)
	set -a; eval "$$($(DEVSTACK) up --stack $(STACK))"; set +a; \
	$(PY) deploy/docker/smoke.py $(SMOKE_ARGS)

# Prometheus's promtool on deploy/monitoring/: the scrape config is valid and every alert
# fires where alerts.test.yml says (docs/operations.md, "Alerts"). The first run builds
# promtool with Go into .local/bin, which takes minutes: hence not part of `make test`.
PROMTOOL := .local/bin/promtool
$(PROMTOOL): deploy/monitoring/promtool/go.mod deploy/monitoring/promtool/go.sum
	cd deploy/monitoring/promtool && go build -buildvcs=false -o $(CURDIR)/$(PROMTOOL) \
		github.com/prometheus/prometheus/cmd/promtool

.PHONY: check-alerts
check-alerts: $(PROMTOOL)
	cd deploy/monitoring && $(CURDIR)/$(PROMTOOL) check config prometheus.yml
	cd deploy/monitoring && $(CURDIR)/$(PROMTOOL) test rules alerts.test.yml

.PHONY: lint
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

.PHONY: docs
docs: $(STAMP)
	$(PY) -m docs.asyncapi.generate
	$(PY) -m docs.settings_reference

# TEST_INFRA=local (default without Docker) starts the test stack itself and stops it after.
.PHONY: test
test: lint
	bash deploy/local/ensure_chromium.sh
	$(PY) -m pytest $(PYTEST_ARGS)

# Schemathesis at full strength: 1,000 generated requests per intake and reporting
# operation (make test runs 100), on the test stack like make test.
.PHONY: fuzz-api
fuzz-api: $(STAMP)
	API_FUZZ_EXAMPLES=1000 $(PY) -m pytest tests/integration/test_api_fuzzing.py $(PYTEST_ARGS)

# Back up every schema and the consumer groups' offsets, then verify it (docs/operations.md).
# make backup [BACKUP_DIR=dir]; where from: DATABASE_URL, KAFKA_BOOTSTRAP_SERVERS, COMPLAINTS_TOPIC_NAMESPACE.
.PHONY: backup
backup: $(STAMP)
	d="$(or $(BACKUP_DIR),.local/backups/$$(date +%Y-%m-%dT%H%M%S))"; \
	$(PY) deploy/local/backup.py backup --to "$$d" && $(PY) deploy/local/backup.py verify --from "$$d"

# Stop the services first. make restore FROM=dir [RESTORE_ARGS="--database-url URL"]
.PHONY: restore
restore: $(STAMP)
	@test -n "$(FROM)" || { echo "usage: make restore FROM=<backup dir> [RESTORE_ARGS=...]"; exit 1; }
	$(PY) deploy/local/backup.py restore --from "$(FROM)" $(RESTORE_ARGS)

.PHONY: clean
clean:
	-$(DEVSTACK) down --stack dev
	-$(DEVSTACK) down --stack test
	rm -rf .local $(VENV)
