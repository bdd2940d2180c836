# crashcart: every job is a make target; each one sets up what it needs first.
#   make synth   synthesize the reference app with the real CDK CLI (no AWS credentials)
#   make check   lint + every test but the QEMU drill (the everyday loop; no root, no QEMU)
#   make test    lint + the whole test suite, the QEMU drill included (what CI runs)
#   make lint    ruff + mypy --strict
#   make drill   the local NMI drill under QEMU
#   make bench   benchmarks -> benchmarks/results.json, docs/benchmarks.md
#   make docs    regenerate generated docs (docs/iam.md)
#   make integ   deploy to YOUR sandbox account, drill a fresh AMI, destroy (never in CI)
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

VENV := .venv
PY := $(VENV)/bin/python

# Offline and quiet: no telemetry, no notices, no version checks, no Node 20 banner.
export CDK_DISABLE_CLI_TELEMETRY := 1
export CDK_DISABLE_VERSION_CHECK := 1
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1
export JSII_SILENCE_WARNING_UNTESTED_NODE_VERSION := 1
export PYTHONDONTWRITEBYTECODE := 1
export AWS_EC2_METADATA_DISABLED := true
export AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED := true

# Two workers (2 cores); a module stays on one worker so its synthesized stacks are shared;
# modules go out longest kind first (tests/conftest.py), not by their number of tests.
PYTEST_ARGS ?= -n 2 --dist loadfile --no-loadscope-reorder

.PHONY: help setup setup-drill synth check test lint fmt drill bench docs integ clean

help:
	@sed -n '2,9p' Makefile

setup:
	@scripts/setup.sh

# The Debian packages of the QEMU drill too (root or sudo): only the targets that run it.
setup-drill:
	@scripts/setup.sh --drill

synth: setup
	@rm -rf cdk.out
	scripts/cdk-offline synth --quiet
	@$(PY) -m crashcart.tools.synth_summary cdk.out

lint: setup
	$(PY) -m ruff check crashcart tests benchmarks examples app.py
	$(PY) -m ruff format --check crashcart tests benchmarks examples app.py
	$(PY) -m mypy crashcart

fmt: setup
	$(PY) -m ruff format crashcart tests benchmarks examples app.py
	$(PY) -m ruff check --fix crashcart tests benchmarks examples app.py

check: setup lint
	$(PY) -m pytest $(PYTEST_ARGS) -m "not e2e"

test: setup-drill lint
	$(PY) -m pytest $(PYTEST_ARGS)

drill: setup-drill
	$(PY) -m crashcart.drill $(DRILL_ARGS)

bench: setup-drill
	$(PY) -m benchmarks

docs: setup
	$(PY) -m crashcart.tools.iam_doc > docs/iam.md
	$(PY) -m crashcart.tools.compliance_doc docs/compliance.md

# In-account verification with your credentials; tests/infra/test_integ_snapshots.py keeps its
# snapshots in step offline.
integ: setup
	@scripts/integ.sh

clean:
	rm -rf cdk.out cdk.out.integ build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
