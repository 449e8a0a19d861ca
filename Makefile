# The two commands a researcher needs: `sudo make experiment` and `sudo make test`.
# Both install what is missing first (scripts/install.sh, idempotent).
PY := .venv/bin/python

.PHONY: install test unit integration test-mptcp test-experiments experiment campus campus-scale cli demo bench lint format clean

install:
	@scripts/install.sh

test: install
	$(PY) -m pytest tests/unit tests/integration tests/mptcp tests/experiments

unit: install
	$(PY) -m pytest tests/unit

integration: install
	$(PY) -m pytest tests/integration

test-mptcp: install
	$(PY) -m pytest tests/mptcp

test-experiments: install
	$(PY) -m pytest tests/experiments

# The interactive testbed: Mininet's CLI with the testbed's commands (TOPO=savi_single
# for the single switch); everything stops when the CLI ends.
TOPO ?= dualhomed
cli: install
	$(PY) -m topologies $(TOPO)

# The attack experiment, default configuration (about 66 min on 2 cores, IPv4 and IPv6); see
# `python -m experiments.run --help` for the others, single cells and --resume.
experiment: install
	$(PY) -m experiments.run --config default

# The campus experiment: attack success and confinement against SAVI coverage (about 16
# min), and the sweep of campus sizes one machine carries (`python -m experiments.campus
# --help`).
campus: install
	$(PY) -m experiments.campus

campus-scale: install
	$(PY) -m experiments.campus --scale --local-server

# What SAVI and Trusted MPTCP cost, against baselines (about 9 min); not tests.
bench: install
	$(PY) -m experiments.bench

# The quick SAVI demonstration (spoofed packets from both attackers), under a minute.
demo: install
	$(PY) -m experiments.demo

lint:
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format:
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

clean:
	rm -rf .venv .pytest_cache
