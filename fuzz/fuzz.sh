#!/usr/bin/env bash
# make fuzz: run every fuzz target (or FUZZ_TARGETS) for FUZZ_SECONDS each.
#
# Engines, best first (docs/fuzzing.md):
#   1. libFuzzer, coverage-guided (fuzz/libfuzzer), built on the STABLE
#      toolchain with LLVM's sanitizer-coverage passes (-Cpasses=sancov-module);
#      when a nightly toolchain is installed it builds with nightly instead and
#      adds AddressSanitizer (-Zsanitizer=address). Needs a C++ compiler
#      (libfuzzer-sys builds libFuzzer).
#   2. When libFuzzer cannot be built: the stable mutation engine
#      (grantwatch-fuzz run), random mutation without coverage feedback, for the
#      same time.
#
# New failing inputs are written to fuzz/crashes/<target>/; commit them and
# `cargo test -p grantwatch-fuzz` replays them. New coverage-increasing inputs go to
# target/libfuzzer/corpus/<target>/; FUZZ_MERGE=1 merges those that add coverage
# into the committed corpus (fuzz/corpus/<corpus>/; keep it small).
#
# Settings: FUZZ_SECONDS (default 60), FUZZ_TARGETS (space-separated, default
# all), FUZZ_ENGINE=libfuzzer|stable (default: libfuzzer when it builds),
# FUZZ_TOOLCHAIN=stable|nightly (default: nightly when installed),
# FUZZ_JOBS (libFuzzer -fork, default 1), CARGO.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
CARGO=${CARGO:-cargo}
SECONDS_EACH=${FUZZ_SECONDS:-60}
ENGINE=${FUZZ_ENGINE:-libfuzzer}
JOBS=${FUZZ_JOBS:-1}
LIBFUZZER_TARGET_DIR=$ROOT/target/libfuzzer

say() { echo "fuzz: $*"; }

# name corpus, one per line
list_targets() { "$CARGO" run -q -p grantwatch-fuzz -- list; }

TARGET_LINES=$(list_targets)
if [ -n "${FUZZ_TARGETS:-}" ]; then
  wanted=""
  for t in $FUZZ_TARGETS; do
    line=$(awk -v t="$t" '$1 == t' <<<"$TARGET_LINES")
    [ -n "$line" ] || { say "no target '$t'; the targets:"; echo "$TARGET_LINES"; exit 2; }
    wanted+="$line"$'\n'
  done
  TARGET_LINES=$wanted
fi

build_libfuzzer() {
  local host toolchain flags
  host=$(rustc -vV | sed -n 's/^host: //p')
  flags="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4"
  flags+=" -Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table"
  flags+=" -Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks"
  toolchain=${FUZZ_TOOLCHAIN:-}
  if [ -z "$toolchain" ]; then
    toolchain=stable
    rustup run nightly rustc --version >/dev/null 2>&1 && toolchain=nightly
  fi
  if [ "$toolchain" = nightly ]; then
    toolchain=nightly
    flags+=" -Zsanitizer=address"
    say "engine: libFuzzer, coverage-guided, nightly toolchain: with AddressSanitizer"
  else
    say "engine: libFuzzer, coverage-guided, on the stable toolchain (AddressSanitizer needs nightly;"
    say "        safe Rust needs none to catch panics and failed properties)"
  fi
  # --target: the flags apply to the fuzzed code only, not to build scripts.
  say "building fuzz/libfuzzer (release, instrumented; the first build takes a few minutes)"
  (cd fuzz/libfuzzer && CARGO_TARGET_DIR=$LIBFUZZER_TARGET_DIR RUSTFLAGS="$flags" \
     rustup run "$toolchain" cargo build --release --locked --target "$host") || return 1
  LIBFUZZER_BIN=$LIBFUZZER_TARGET_DIR/$host/release/grantwatch-libfuzzer
}

run_libfuzzer() {
  local name=$1 corpus=$2 work=$LIBFUZZER_TARGET_DIR/corpus/$1 crashes=$ROOT/fuzz/crashes/$1
  local log=$LIBFUZZER_TARGET_DIR/logs/$1.log status=0
  local args=(-max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
              -artifact_prefix="$crashes/")
  [ "$JOBS" -gt 1 ] && args+=(-fork="$JOBS")
  mkdir -p "$work" "$crashes" "$(dirname "$log")"
  say "$name: libFuzzer for ${SECONDS_EACH}s (corpus fuzz/corpus/$corpus, new inputs in ${work#"$ROOT"/}, log ${log#"$ROOT"/})"
  # The committed crash inputs are not given: a known bug's input would stop the run at once.
  GRANTWATCH_FUZZ_TARGET=$name "$LIBFUZZER_BIN" "${args[@]}" "$work" "fuzz/corpus/$corpus" >"$log" 2>&1 || status=$?
  grep -E '^Done [0-9]+ runs|^stat::peak_rss_mb|panicked at|^SUMMARY|ERROR: (libFuzzer|AddressSanitizer)|Test unit written' "$log" | sed "s/^/fuzz: $name: /" || true
  if [ "$status" != 0 ] && ! grep -q 'Test unit written' "$log"; then
    say "$name: ERROR: libFuzzer exited with $status without a failing input (see ${log#"$ROOT"/})"
    RUN_ERRORS=1
  fi
  if [ "${FUZZ_MERGE:-0}" = 1 ]; then
    GRANTWATCH_FUZZ_TARGET=$name "$LIBFUZZER_BIN" -merge=1 "fuzz/corpus/$corpus" "$work" 2>&1 | grep -E 'MERGE-OUTER: [0-9]+ new files' | sed "s/^/fuzz: $name: /" || true
  fi
}

RUN_ERRORS=0
LIBFUZZER_BIN=""
if [ "$ENGINE" = libfuzzer ]; then
  if ! build_libfuzzer; then
    say "WARNING: libFuzzer could not be built here (see the errors above);"
    say "         falling back to the stable engine: random mutation, NOT coverage-guided"
    ENGINE=stable
  fi
fi

before=$(find fuzz/crashes -type f | sort)
if [ "$ENGINE" = libfuzzer ]; then
  while read -r name corpus; do
    [ -n "$name" ] || continue
    run_libfuzzer "$name" "${corpus#fuzz/corpus/}"
  done <<<"$TARGET_LINES"
else
  say "engine: the stable mutation engine (grantwatch-fuzz run): random mutation, NOT coverage-guided"
  names=$(awk '{print $1}' <<<"$TARGET_LINES" | tr '\n' ' ')
  # shellcheck disable=SC2086
  # Optimised, but unwinding (the workspace's release profile aborts on a panic, which the engine must
  # catch to save the input) and checked; its own target dir keeps target/release as it is.
  CARGO_TARGET_DIR=$ROOT/target/fuzz-stable CARGO_PROFILE_RELEASE_PANIC=unwind CARGO_PROFILE_RELEASE_LTO=false \
    CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 CARGO_PROFILE_RELEASE_DEBUG_ASSERTIONS=true \
    CARGO_PROFILE_RELEASE_OVERFLOW_CHECKS=true \
    "$CARGO" run -q --release -p grantwatch-fuzz -- run $names --seconds "$SECONDS_EACH" || RUN_ERRORS=$?
  # 1: a failing input (listed below); anything else: the engine did not run.
  if [ "$RUN_ERRORS" = 1 ]; then RUN_ERRORS=0; fi
fi

new=$(comm -13 <(echo "$before") <(find fuzz/crashes -type f | sort))
if [ -n "$new" ]; then
  say "FAILING inputs found (commit them: cargo test -p grantwatch-fuzz replays them):"
  echo "$new" | sed 's/^/  /'
  exit 1
fi
[ "$RUN_ERRORS" = 0 ] || { say "some targets did not run (above)"; exit 1; }
say "no failing input found"
