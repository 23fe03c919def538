# k3s-autoscaler: the two commands a newcomer needs are `make run` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help
ROOT := $(abspath .)
VENV ?= $(ROOT)/.venv
PY := $(VENV)/bin/python
COLLECTION := collections/ansible_collections/k3s/autoscaler
export PATH := $(VENV)/bin:$(PATH)
export ANSIBLE_CONFIG := $(ROOT)/ansible.cfg
PYTEST_ARGS ?=
PYTEST_WORKERS ?= 2
SCENARIO ?= burst
SEED ?= 6
RUNS ?= 300
TRACE ?=

.PHONY: help setup run test unit sanity lint validate molecule bench bench-replay bench-cycle chaos repair-state clean

help: ## list targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk -F':.*?## ' '{printf "  make %-14s %s\n", $$1, $$2}'

setup: ## install everything (apt prometheus, .venv with pinned requirements, ansible-test offline bootstrap)
	@./scripts/setup.sh

run: setup ## the main job on the local cluster: SCENARIO=steady|burst|diurnal|normal|high|low|boundary|trace (default burst; TRACE=csv with trace)
	@cd $(ROOT) && $(PY) scripts/demo.py --scenario $(SCENARIO) $(if $(TRACE),--trace $(TRACE),)

test: setup ## run every test: validate, pytest (unit + integration) alongside lint, molecule and ansible-test sanity
	@./scripts/run_tests.sh

validate: ## validate every inventory against the roles' argument specs (VAULT_PASSWORD_FILE=... INVENTORY=inventories/<env>)
	@cd $(ROOT) && $(PY) scripts/validate_inventories.py $(INVENTORY) $(if $(VAULT_PASSWORD_FILE),--vault-password-file $(VAULT_PASSWORD_FILE),)

lint: ## ansible-lint, production profile, offline (playbooks, roles, inventories, collection)
	@cd $(ROOT) && $(VENV)/bin/ansible-lint

molecule: ## one molecule scenario per role (default driver, localhost)
	@for r in prometheus grafana k3s_manifests autoscaler_timer; do \
	  echo "==> molecule test roles/$$r"; (cd $(ROOT)/roles/$$r && $(VENV)/bin/molecule test) || exit 1; done

unit: ## pytest: collection unit tests and repo tests (PYTEST_WORKERS=2 by default, 0 = one process; PYTEST_ARGS=...)
	@cd $(ROOT) && { $(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadfile --durations=15 $(PYTEST_ARGS); rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "pytest: no tests collected (exit 5) for '$(PYTEST_ARGS)'; treated as success"; rc=0; fi; exit $$rc; }

sanity: ## ansible-test sanity for the collection (offline; see scripts/setup.sh)
	@cd $(COLLECTION) && $(VENV)/bin/ansible-test sanity --venv --python 3.11 --color no

bench: bench-replay bench-cycle ## every benchmark (prints figures; not tests)

bench-cycle: setup ## wall time of one autoscale run at 10 and 1,000 simulated nodes vs a no-op playbook with the same task count
	@cd $(ROOT) && $(PY) scripts/bench_cycle.py

bench-replay: setup ## replay burst, diurnal and a 7-day Alibaba trace window: threshold vs binpacking vs an oracle lower bound (out/bench-replay.{json,png})
	@cd $(ROOT) && $(PY) bench/replay.py

chaos: setup ## fault-injection harness (RUNS=300, SEED=6 by default): six invariants after every run; out/chaos.json; exit 1 on any violation
	@cd $(ROOT) && $(PY) scripts/chaos.py --seed $(SEED) --runs $(RUNS)

repair-state: ## move a corrupt state file aside and start fresh: make repair-state STATE=path/to/state.json
	@cd $(ROOT) && $(PY) scripts/repair_state.py $(STATE)

clean: ## remove run artefacts (keeps .venv)
	rm -rf run out $(COLLECTION)/tests/output
