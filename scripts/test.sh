#!/usr/bin/env bash
# THE test command for brook (README and .ci/run call this). On a fresh Debian
# machine it installs what the tests need (scripts/install-test-deps.sh, idempotent),
# then runs formatting, lints, the broker build, every test, the doc tests, and
# each protocol fuzz target for a short budget (scripts/fuzz.sh).
# Exits non-zero on the first failure.
#
# Environment:
#   BROOK_SKIP_INSTALL=1   do not install anything (offline machines)
#   BROOK_TEST_KEEP=1      keep broker data dirs and logs of the e2e tests
#   BROOK_FUZZ_SECONDS=30  seconds per fuzz target (0 skips fuzzing)
#   BROOK_MIN_FREE_GB=6    refuse to start with less free disk than this where
#                          the build goes (the build alone writes 8-10 GB and
#                          the tests more, about 15 GB in all, so below 6 it
#                          cannot pass); 0 skips the check
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*" >&2; }
start=$(date +%s)

# A full disk midway fails tests with errors that name everything but the
# disk; say it up front instead.
min_free_gb=${BROOK_MIN_FREE_GB:-6}
if ! [[ $min_free_gb =~ ^[0-9]+$ ]]; then
    echo "BROOK_MIN_FREE_GB must be a whole number of GB, not '$min_free_gb'" >&2
    exit 2
fi
if [ "$min_free_gb" != 0 ]; then
    target_dir=${CARGO_TARGET_DIR:-target}
    probe=$target_dir
    while [ ! -e "$probe" ]; do probe=$(dirname "$probe"); done
    free_kb=$(df -Pk "$probe" | awk 'NR == 2 {print $4}')
    if [ "$free_kb" -lt $((min_free_gb * 1024 * 1024)) ]; then
        echo "only $((free_kb / 1024 / 1024)) GB free where the build goes ($probe); a from-scratch run needs about 15 GB (BROOK_MIN_FREE_GB=$min_free_gb; set it to 0 to try anyway)" >&2
        exit 1
    fi
fi

if [ "${BROOK_SKIP_INSTALL:-0}" != 1 ]; then
    step "installing test dependencies"
    scripts/install-test-deps.sh
fi

# The e2e tests treat a missing kcat / Python venv as a failure, not a skip,
# because the step above installed them.
export BROOK_REQUIRE_CLIENTS="${BROOK_REQUIRE_CLIENTS:-1}"
# Panics keep RUST_BACKTRACE; anyhow errors from tests stay readable without one.
export RUST_LIB_BACKTRACE="${RUST_LIB_BACKTRACE:-0}"

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings

step "building the brook binary for the e2e tests"
cargo build -p brook-broker --bin brook

if command -v cargo-nextest >/dev/null 2>&1; then
    step "cargo nextest run"
    cargo nextest run --workspace --no-fail-fast
else
    step "cargo test (cargo-nextest not installed)"
    cargo test --workspace --no-fail-fast
fi

step "doc tests"
cargo test --doc --workspace

if [ "${BROOK_FUZZ_SECONDS:-30}" != 0 ]; then
    step "fuzzing each protocol target for ${BROOK_FUZZ_SECONDS:-30}s (stable + RUSTC_BOOTSTRAP)"
    scripts/fuzz.sh
fi

step "all checks passed in $(( $(date +%s) - start ))s"
