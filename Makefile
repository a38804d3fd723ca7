# pyauth: thin wrappers around docker compose. `make` alone lists the targets.
.DEFAULT_GOAL := help
SHELL := /bin/bash

COMPOSE := docker compose -f compose.yaml -f compose.test.yaml
# The CA bundle handed to image builds as a BuildKit secret (for TLS-intercepting proxies). An empty
# file means "no extra CA": the build then uses the tools' defaults.
PYPI_CA_BUNDLE ?= $(firstword $(wildcard $(SSL_CERT_FILE) /etc/ssl/certs/ca-certificates.crt) docker/no-extra-ca.pem)
export PYPI_CA_BUNDLE

LINT := ruff check . && ruff format --check . && mypy app tests tools && python3 tools/audit_dependencies.py
# The drivers of make faults and make bench, with the same tools and settings (faults/ruff.toml and
# bench/ruff.toml extend the API's pyproject.toml; mypy runs with the API's config, strict). The test image
# holds only services/api: the folders are mounted read-only under /srv/lint, so caches go to /tmp. The
# bench driver's own unit tests (its gate) and the open-loop generator's run here too. The ceilings and the
# side-by-side app import the app: MYPYPATH finds it.
# libs/pyauth-resource: ruff with the API's settings (its pyproject.toml extends them), mypy strict with its
# own config (its tests run in make test, under services/api/tests/resource).
LINT_DRIVERS_MOUNTS := -v "$(CURDIR)/faults:/srv/lint/faults:ro" -v "$(CURDIR)/bench:/srv/lint/bench:ro" \
	-v "$(CURDIR)/swarm:/srv/lint/swarm:ro" -v "$(CURDIR)/libs:/srv/lint/libs:ro" \
	-v "$(CURDIR)/services/api/pyproject.toml:/srv/lint/services/api/pyproject.toml:ro"
LINT_MYPY := MYPYPATH=/srv/pyauth mypy --config-file /srv/pyauth/pyproject.toml --cache-dir /tmp/mypy-lint
LINT_DRIVERS := cd /srv/lint && ruff check --no-cache faults bench swarm \
	&& ruff format --check --no-cache faults bench swarm \
	&& (cd faults && $(LINT_MYPY) .) && (cd swarm && $(LINT_MYPY) scale_check.py) \
	&& (cd bench && $(LINT_MYPY) driver.py api_settings.py cpu.py fairness.py test_driver.py openloop.py tail.py \
		comparison.py repetitions.py test_openloop.py) \
	&& (cd bench/ceilings && $(LINT_MYPY) .) && (cd bench/sidebyside && $(LINT_MYPY) .) \
	&& python3 -m pytest -q -p no:cacheprovider -p no:asyncio --rootdir /tmp bench/test_driver.py bench/test_openloop.py \
	&& ruff check --no-cache libs && ruff format --check --no-cache libs \
	&& (cd libs/pyauth-resource && mypy --cache-dir /tmp/mypy-libs)
# pip-audit asks PyPI's vulnerability service; behind a TLS-intercepting proxy it needs the same CA bundle.
AUDIT_CA := $(if $(filter docker/no-extra-ca.pem,$(PYPI_CA_BUNDLE)),,-v "$(abspath $(PYPI_CA_BUNDLE)):/run/pyauth-ca.pem:ro" -e REQUESTS_CA_BUNDLE=/run/pyauth-ca.pem)

.PHONY: help up down clean logs ps test lint fmt migrate shell psql rotate-keys prereqs base-image bench admin \
	faults client test-output swarm-up swarm-status swarm-down swarm-update scale-check

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  make %-8s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

# A missing docker CLI, engine or Compose v2: on Debian as root, docker/install-engine.sh runs (saying so);
# elsewhere the one command to run is printed (docker/prereqs.sh, tested by docker/test-prereqs.sh).
prereqs: ## Check for Docker and Compose v2; on Debian as root, install and start them
	@bash docker/prereqs.sh

base-image: prereqs
	@./docker/base-image.sh

# The tests service lives in the browser service's network namespace (compose.test.yaml), so even a run
# that needs no browser (lint, fmt: --no-deps) needs that service's container up.
BROWSER_UP := $(COMPOSE) --profile test up --detach --wait --no-deps browser

# Where the tests leave files for people (the browser tests' screenshots), mounted into every run of the
# tests service (compose.test.yaml): made here, writable by the test image's user (uid 10001), before the
# engine would make it root's.
test-output:
	@mkdir -p services/api/test-output && chmod 0777 services/api/test-output

up: base-image ## Build and start db, migrate and api; wait until healthy
	$(COMPOSE) up --build --detach --wait
	@$(COMPOSE) ps
	@echo "pyauth is up: http://127.0.0.1:$${API_PORT:-8000}/docs"

down: ## Stop every service gracefully; keeps the data volume (and the logs, until the next make up)
	$(COMPOSE) --profile test stop

clean: ## Stop everything and DELETE the data volume
	@echo "Removing containers and the pgdata volume: all development data is deleted."
	$(COMPOSE) --profile test down --remove-orphans --volumes

logs: ## Follow the logs of every service
	$(COMPOSE) logs --follow

ps: ## Show services and their health
	$(COMPOSE) ps --all

test: base-image test-output ## Run pytest (three workers) in the compose network against databases of its own (pyauth_gw0_test to pyauth_gw2_test)
	$(COMPOSE) --profile test build tests
	$(COMPOSE) --profile test run --rm tests

lint: base-image test-output ## ruff check, ruff format --check, mypy and a dependency audit (app, faults/, bench/, swarm/, libs/), in the test image
	@bash docker/test-prereqs.sh
	$(COMPOSE) --profile test build tests
	$(BROWSER_UP)
	$(COMPOSE) --profile test run --rm --no-deps $(AUDIT_CA) $(LINT_DRIVERS_MOUNTS) tests \
		sh -c '$(LINT) && $(LINT_DRIVERS)'

fmt: base-image test-output ## Format the code with ruff (writes to services/api, faults, bench, swarm and libs)
	$(COMPOSE) --profile test build tests
	$(BROWSER_UP)
	$(COMPOSE) --profile test run --rm --no-deps --user "$$(id -u):$$(id -g)" \
		-v "$(CURDIR)/services/api:/srv/pyauth" -v "$(CURDIR)/faults:/srv/lint/faults" \
		-v "$(CURDIR)/bench:/srv/lint/bench" -v "$(CURDIR)/swarm:/srv/lint/swarm" -v "$(CURDIR)/libs:/srv/lint/libs" \
		-v "$(CURDIR)/services/api/pyproject.toml:/srv/lint/services/api/pyproject.toml:ro" tests \
		sh -c 'ruff check --fix . && ruff format . && cd /srv/lint && ruff check --no-cache --fix faults bench swarm libs \
			&& ruff format --no-cache faults bench swarm libs'

# Its own compose project (FAULTS_PROJECT, default pyauth-faults) with its own volume and free ports; the
# development stack and its data are not touched. FAULTS_ARGS passes options, e.g. FAULTS_ARGS="--only 1,2".
faults: base-image ## Fault injection + schemathesis on a throw-away stack (about 5 min)
	@python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
		|| { echo "make faults needs python3 3.11 or later on the host (standard library only)"; exit 1; }
	@python3 faults/run.py $(FAULTS_ARGS)

bench: base-image ## Benchmark the running stack (after make up) against this machine's limits
	@./bench/run.sh

migrate: prereqs ## Apply database migrations (alembic upgrade head)
	$(COMPOSE) run --rm migrate

shell: prereqs ## Open a shell in the running api container
	$(COMPOSE) exec api bash

psql: prereqs ## Open psql on the development database, as its owner (pyauth_owner)
	$(COMPOSE) exec db sh -c 'PGPASSWORD="$$POSTGRES_OWNER_PASSWORD" psql -h 127.0.0.1 -U "$$POSTGRES_OWNER_USER" "$$POSTGRES_DB"'

rotate-keys: prereqs ## New signing keys (EC and RSA), published now, signing after KEY_PUBLICATION_LEAD_SECONDS (ARGS=--now: at once)
	$(COMPOSE) exec api python3 -m app.keys.cli rotate $(ARGS)

# EMAIL must come from the command line: many shells export EMAIL for mail tools. The address reaches the
# container as an argument quoted by the shell from the environment, never spliced into the command; the
# password never appears on a command line. A terminal gets a TTY (getpass, no echo), even when stdout
# is redirected; a pipe on stdin gets -T, since compose refuses a TTY for a non-terminal stdin.
# An existing account whose address was never verified is refused unless FORCE=1 (also from the command
# line only): anyone can register the address an operator is expected to promote.
admin: prereqs ## Create an admin, or grant the role to a verified user: make admin EMAIL=alice@example.com [FORCE=1]
	@if [ "$(origin EMAIL)" != "command line" ] || [ -z "$$EMAIL" ]; then \
		echo "usage: make admin EMAIL=alice@example.com [FORCE=1]  (asks for the password, or reads one line from stdin)"; \
		exit 2; \
	fi
	$(COMPOSE) exec $$([ -t 0 ] && echo --no-TTY=false || echo -T) api \
		python3 -m app.admin.cli create-admin "$$EMAIL" $(if $(and $(filter command line,$(origin FORCE)),$(filter 1,$(FORCE))),--force)

# ARGS is split by the shell like a command line, so quote values with spaces inside it. A confidential
# client's secret is printed once (create, rotate-secret): only its digest is stored.
client: prereqs ## OAuth clients: make client ARGS='create --name "My app" --redirect-uri https://app.example.com/cb' (or list, rotate-secret ID, delete ID)
	@$(if $(strip $(ARGS)),true,echo "usage: make client ARGS='create --name \"My app\" [--type public] [--redirect-uri URI]...' | ARGS=list | ARGS='rotate-secret CLIENT_ID' | ARGS='delete CLIENT_ID'"; exit 2)
	$(COMPOSE) exec -T api python3 -m app.clients.cli $(ARGS)

# Docker Swarm (compose.swarm.yaml; README, "Running on several machines"): its own stack (pyauth-swarm)
# beside the compose stack, with the edge proxy on https://localhost:$${EDGE_PORT:-8443} as its one port.
swarm-up: base-image ## Swarm: init a one-node swarm if needed, build, deploy; wait until the API replicas are healthy
	@bash swarm/swarm.sh up

swarm-status: ## Swarm: services, tasks and readiness through the edge proxy
	@bash swarm/swarm.sh status

swarm-down: ## Swarm: remove the stack; keeps its data volume (pyauth-swarm_pgdata)
	@bash swarm/swarm.sh down

swarm-update: base-image ## Swarm: build the API and roll it through (migrate, api start-first, worker); the same image: forced
	@bash swarm/swarm.sh update

scale-check: ## Swarm: prove the replicas share their state (after make swarm-up); SCALE_ARGS="--only 1,2"
	@python3 swarm/scale_check.py $(SCALE_ARGS)
