#!/usr/bin/env bash
# Run every brook-protocol fuzz target (protocol/fuzz/fuzz_targets/*.rs) for a
# short budget each, on the stable toolchain: cargo-fuzz needs nightly flags
# (-Zsanitizer=address), which RUSTC_BOOTSTRAP=1 allows on stable. scripts/test.sh
# calls this; a crash, leak, timeout or OOM fails it (cargo fuzz exits non-zero
# and libFuzzer leaves the input under protocol/fuzz/artifacts/<target>/).
#
# Each target's corpus lives in protocol/fuzz/corpus/<target>/ (git-ignored), so
# repeated local runs keep what earlier runs found; `request` is seeded with the
# golden request vectors (protocol/tests/vectors, given their 4-byte size prefix).
#
# Environment:
#   BROOK_FUZZ_SECONDS=30   seconds per target (longer runs: protocol/README.md)
set -euo pipefail
cd "$(dirname "$0")/../protocol/fuzz"

secs="${BROOK_FUZZ_SECONDS:-30}"
export RUSTC_BOOTSTRAP=1
# ASan's default 256 MiB quarantine alone would hit the RSS limit below (the
# decompressors allocate and free up to 1 MiB per input; see fuzz/src/lib.rs).
export ASAN_OPTIONS="${ASAN_OPTIONS:-quarantine_size_mb=32}"

if ! command -v cargo-fuzz >/dev/null 2>&1; then
    echo "cargo-fuzz is not installed (scripts/install-test-deps.sh installs it)" >&2
    exit 1
fi

seed_requests() {
    local dir=$1
    mkdir -p "$dir"
    [ -n "$(ls -A "$dir")" ] && return 0
    python3 - "$dir" ../tests/vectors <<'PY'
import pathlib, struct, sys
out, src = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
for f in sorted(src.rglob("*.bin")):
    body = f.read_bytes()
    (out / f"{f.parent.name}-{f.name}").write_bytes(struct.pack(">i", len(body)) + body)
PY
}

cargo fuzz build -O
for target in fuzz_targets/*.rs; do
    name=$(basename "$target" .rs)
    corpus="corpus/$name"
    mkdir -p "$corpus"
    [ "$name" = request ] && seed_requests "$corpus"
    echo "==> fuzz $name for ${secs}s" >&2
    cargo fuzz run -O "$name" "$corpus" -- \
        -max_total_time="$secs" -rss_limit_mb=256 -timeout=10 -print_final_stats=1
done
