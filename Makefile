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

.PHONY: help venv chromium build test unit-test e2e-test lint fmt bench load fuzz demo clean
.PHONY: deploy-tools lambda-artifacts package deploy release deny deny-tool

help: ## list the commands
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(VENV_STAMP): requirements-test.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r requirements-test.txt
	touch $@

venv: $(VENV_STAMP) ## install the Python test tools (moto, cfn-lint, samtranslator) into .venv

# --- infra: SAM CLI, cargo-lambda and Zig (pip) on top of the test tools.
DEPLOY_STAMP := $(VENV)/.deploy-installed
# Offline machines and CI: SAM CLI sends no telemetry.
export SAM_CLI_TELEMETRY := 0
$(DEPLOY_STAMP): $(VENV_STAMP) requirements-deploy.txt
	$(VENV)/bin/pip install --quiet -r requirements-deploy.txt
	touch $@

deploy-tools: $(DEPLOY_STAMP) ## install SAM CLI, cargo-lambda and Zig into .venv

# --- infra: checkov (policy-as-code) in a venv of its own: its boto3 pin
# conflicts with the SAM CLI's. Suppressions are justified in the templates.
POLICY_VENV  := $(VENV)/policy
POLICY_STAMP := $(POLICY_VENV)/.installed
$(POLICY_STAMP): $(VENV_STAMP) requirements-policy.txt
	python3 -m venv $(POLICY_VENV)
	$(POLICY_VENV)/bin/pip install --quiet -r requirements-policy.txt
	touch $@

# Debian's Chromium renders report.html in a test and the demo's PNGs.
chromium: ## install Debian's chromium (headless rendering) when missing; needs root
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "chromium: installing Debian's chromium package"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else \
	    echo "chromium: not installed; run 'sudo apt-get install chromium'"; exit 1; \
	  fi; }

build: ## build every crate (debug)
	$(CARGO) build --workspace --all-targets

lint: $(VENV_STAMP) $(DEPLOY_STAMP) $(POLICY_STAMP) ## static checks: rustfmt, clippy, template linters, policy-as-code
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	cfn-lint infra/*.yaml
	for template in infra/*.yaml; do sam validate --lint --region us-east-1 --template-file "$$template"; done
	$(POLICY_VENV)/bin/checkov --directory infra --framework cloudformation --compact --quiet --skip-download
	$(MAKE) --no-print-directory deny

# cargo-deny (deny.toml): licences, bans (one TLS/HTTP stack), sources.
# Advisories need the RustSec database from GitHub: run
# `cargo deny check advisories` where it can be fetched. Building
# cargo-deny takes 5-11 min on 2 cores, so it is installed on demand
# (`make deny-tool`, or GRANTWATCH_INSTALL_DENY=1), not on every CI run.
deny-tool: ## install cargo-deny from crates.io (cargo install --locked)
	command -v cargo-deny >/dev/null 2>&1 || $(CARGO) install --locked cargo-deny

deny: ## cargo-deny: licences, bans and sources (advisories need network)
	@if [ "$${GRANTWATCH_INSTALL_DENY:-0}" = 1 ]; then $(MAKE) --no-print-directory deny-tool; fi
	@if command -v cargo-deny >/dev/null 2>&1; then \
	  $(CARGO) deny --offline check licenses bans sources; \
	else \
	  echo "deny: WARNING: cargo-deny is not installed: licences and bans NOT checked (make deny-tool)"; \
	fi

# One debug build for everything: `build --all-targets` resolves features
# exactly as `test --all-targets` does, so the tests run these binaries
# (GRANTWATCH_BIN_DIR) instead of building them again with other features.
BIN_DIR := $(CURDIR)/target/debug

# make test builds the deployable arm64 artifacts to catch a broken cross
# build, with thin LTO and parallel codegen: the full profile (fat LTO, one
# codegen unit) is for `make package`, and would take most of CI's budget.
CI_RELEASE_PROFILE := CARGO_PROFILE_RELEASE_LTO=thin CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16

test: lint chromium ## lint, the arm64 and host release builds, then every unit, property and end-to-end test
	$(CI_RELEASE_PROFILE) $(MAKE) --no-print-directory lambda-artifacts
	@# The host release watcher (panic = "abort", as Lambda runs it) for the
	@# hostile-input test, which then must not skip it.
	$(CI_RELEASE_PROFILE) $(CARGO) build --release -p grant-watcher
	$(CARGO) build --workspace --all-targets
	GRANTWATCH_BIN_DIR=$(BIN_DIR) GRANTWATCH_REQUIRE_RELEASE=1 $(CARGO) test --workspace --all-targets --no-fail-fast

DEMO_OUT := out/demo
demo: $(VENV_STAMP) ## the whole story against a local AWS emulator (moto); no AWS account needed
	@$(MAKE) --no-print-directory chromium || echo "demo: no chromium: the PNG renderings will be skipped"
	$(CARGO) build --workspace --all-targets
	rm -rf $(DEMO_OUT)
	GRANTWATCH_BIN_DIR=$(BIN_DIR) $(BIN_DIR)/demo $(DEMO_OUT)

fmt: ## format the code
	$(CARGO) fmt --all

# The cold start (tests/examples/coldstart.rs: the release watcher and the
# Python/boto3 baseline bench/coldstart_baseline.py behind the Runtime API
# harness, ledger on moto) and the Lambda artifacts' sizes are rows of the
# same table; docs/bench.md has every figure and the command behind it.
bench: $(VENV_STAMP) ## criterion benchmarks, the 2,000 x 17 organization, cold start and artifact sizes, then the backfill table (against zcat and Python in the same run)
	$(CARGO) bench -p grantwatch-core
	$(CARGO) bench -p grantwatch-aws --features stand-in --bench organization
	$(CARGO) build --release -p grantwatch -p grant-watcher
	$(CARGO) run --quiet -p grantwatch-e2e --example coldstart -- --watcher target/release/grant-watcher
	$(MAKE) --no-print-directory lambda-artifacts
	bench/artifacts.sh target/lambda
	bench/backfill.sh target/release/grantwatch

# The issue-9 burst at full size: 5,000 grant events through eight execution
# environments of the compiled watcher against moto (make test runs 400).
# About 11-13 minutes on 2 cores; it asserts counts, never times.
load: $(VENV_STAMP) ## the 5,000-event burst through the compiled watcher against moto (docs/watcher.md, Tests)
	$(CARGO) build -p grant-watcher
	GRANTWATCH_LOAD_EVENTS=5000 $(CARGO) test -p grantwatch-e2e --test watcher_load -- --nocapture

# make test replays the fuzz corpora and crashes (cargo test -p grantwatch-fuzz);
# this fuzzes each target for FUZZ_SECONDS: libFuzzer, coverage-guided, built on
# stable (with AddressSanitizer when a nightly toolchain exists), else the stable
# engine. FUZZ_TARGETS="glob rules", FUZZ_MERGE=1, FUZZ_JOBS=2: docs/fuzzing.md.
fuzz: ## fuzz every target for FUZZ_SECONDS each (default 60); failing inputs go to fuzz/crashes/
	CARGO=$(CARGO) fuzz/fuzz.sh

clean: ## remove build output, the venv and demo output
	rm -rf target $(VENV) out .aws-sam infra/.aws-sam

# --- infra: deployable Lambda artifacts, sam build, sam deploy (docs/deploy.md).
LAMBDA_TARGET := aarch64-unknown-linux-gnu

# -p selects the two functions only: a workspace-wide build would unify their
# features with the CLI's (aws-config's SSO and credential_process) and link
# those into the Lambdas. The template passes the same flag (CargoLambdaFlags).
LAMBDA_PACKAGES := -p grant-watcher -p grant-report

lambda-artifacts: $(DEPLOY_STAMP) ## release build of both functions for Lambda (arm64; x86_64 if arm64 cannot be installed)
	@if rustup target list --installed 2>/dev/null | grep -x $(LAMBDA_TARGET) >/dev/null \
	    || rustup target add $(LAMBDA_TARGET); then \
	  echo "lambda-artifacts: cargo lambda build --release --arm64 (grant-watcher, grant-report, their features only)"; \
	  cargo lambda build --release --arm64 $(LAMBDA_PACKAGES) --bin grant-watcher --bin grant-report; \
	else \
	  echo "lambda-artifacts: WARNING: the Rust target $(LAMBDA_TARGET) cannot be installed here;"; \
	  echo "lambda-artifacts: building x86_64 instead (deploy with Architecture=x86_64 or fix rustup)."; \
	  cargo lambda build --release --x86-64 $(LAMBDA_PACKAGES) --bin grant-watcher --bin grant-report; \
	fi
	@ls -l $${CARGO_TARGET_DIR:-target}/lambda/*/bootstrap

# Which [ENV.*] sections of infra/samconfig.toml to use; the architecture
# comes from that environment's saved Architecture parameter, so the build
# and the deploy agree (override with ARCH=x86_64).
DEPLOY_ENV ?= default
SAMCONFIG  := python3 infra/samconfig.py
ARCH       ?= $(shell $(SAMCONFIG) get Architecture --env $(DEPLOY_ENV) --default arm64 2>/dev/null || echo arm64)

package: $(DEPLOY_STAMP) ## sam build: both functions with cargo-lambda, into infra/.aws-sam (ARCH=arm64|x86_64)
	@case "$(ARCH)" in arm64|x86_64) ;; *) echo "package: ARCH must be arm64 or x86_64, not '$(ARCH)'"; exit 2;; esac
	@if [ "$(ARCH)" = arm64 ]; then rustup target list --installed | grep -x $(LAMBDA_TARGET) >/dev/null || rustup target add $(LAMBDA_TARGET); fi
	@echo "package: sam build for $(ARCH)"
	cd infra && sam build --parameter-overrides Architecture=$(ARCH)

# make deploy                  first time: guided (asks, saves to infra/samconfig.toml, then
#                              drops the empty answers); later: the saved answers, showing the change set
# make deploy UNATTENDED=1     for pipelines: no prompt, no change-set confirmation, parameters only
#                              from the committed infra/samconfig.toml ([DEPLOY_ENV.deploy.parameters])
deploy: package ## sam deploy (guided the first time; UNATTENDED=1 DEPLOY_ENV=name for pipelines)
	$(SAMCONFIG) check-recipient --env $(DEPLOY_ENV)
	cd infra && python3 samconfig.py deploy --env $(DEPLOY_ENV) --arch $(ARCH) $(if $(UNATTENDED),--unattended)

RELEASE_DIR := out/release
VERSION     := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
release: package ## versioned zips of both functions and the CLI, plus a packaged template, in out/release
	rm -rf $(RELEASE_DIR) && mkdir -p $(RELEASE_DIR)
	for pair in grant-watcher:WatcherFunction grant-report:ReportFunction; do \
	  fn=$${pair%%:*}; dir=infra/.aws-sam/build/$${pair#*:}; \
	  [ -f "$$dir/bootstrap" ] || { echo "release: $$dir/bootstrap missing (sam build output)"; exit 1; }; \
	  (cd "$$dir" && zip -q -X "$(CURDIR)/$(RELEASE_DIR)/$$fn-$(VERSION)-$(ARCH).zip" bootstrap); \
	done
	$(CARGO) build --release -p grantwatch
	cd target/release && zip -q -X "$(CURDIR)/$(RELEASE_DIR)/grantwatch-cli-$(VERSION)-$$(uname -m)-linux.zip" grantwatch
	cd infra && sam package --config-env $(DEPLOY_ENV) --output-template-file "$(CURDIR)/$(RELEASE_DIR)/template-$(VERSION).yaml"
	cd $(RELEASE_DIR) && sha256sum *.zip *.yaml > SHA256SUMS && ls -l
