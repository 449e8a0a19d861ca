# The two commands a researcher needs: `sudo make experiment` and `sudo make test`.
# Both install what is missing first (scripts/install.sh, idempotent).
PY := .venv/bin/python

.PHONY: install test unit integration test-mptcp experiment lint format clean

install:
	@scripts/install.sh

test: install
	$(PY) -m pytest tests/unit tests/integration

unit: install
	$(PY) -m pytest tests/unit

integration: install
	$(PY) -m pytest tests/integration

# Trusted MPTCP on Mininet: not yet stable (see docs/trusted-mptcp.md), so not in `test`.
test-mptcp: install
	$(PY) -m pytest tests/mptcp

experiment: install
	$(PY) -m experiments.demo

lint:
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format:
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

clean:
	rm -rf .venv .pytest_cache
