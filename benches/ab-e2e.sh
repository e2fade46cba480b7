#!/usr/bin/env bash
# Interleaved A/B of two brook binaries with the e2e harness: ROUNDS rounds,
# each running one e2e run (brook + sink limit) for binary A, then for B.
# Interleaving spreads the machine's load drift over both; compare medians.
#
#   benches/ab-e2e.sh OLD_BROOK NEW_BROOK [ROUNDS] [SIZE] [ACKS]
#
# Prints one line per run: which, round, produce and consume MB/s of brook,
# of the limit (sink), and brook/limit; then the medians.
set -euo pipefail
cd "$(dirname "$0")/.."
a=$1 b=$2 rounds=${3:-6} size=${4:-1024} acks=${5:-1}
out=$(mktemp -d)
cargo build -q --release -p brook-benches --bin e2e
for i in $(seq "$rounds"); do
    for which in A B; do
        bin=$a; [ "$which" = B ] && bin=$b
        target/release/e2e --runs 1 --sizes "$size" --acks "$acks" --brook "$bin" \
            --output "$out/$which-$i.md" >/dev/null 2>&1
        for phase in produce consume; do
            row=$(grep "^| $phase" "$out/$which-$i.md" | head -1 | awk -F'|' '{print $3, $6, $9}')
            echo "$which $i $phase $row load=$(cut -d' ' -f1 /proc/loadavg)"
        done
    done
done | tee "$out/runs.txt"
echo "medians of brook MB/s (A = $a, B = $b):"
for which in A B; do
    for phase in produce consume; do
        m=$(awk -v w="$which" -v p="$phase" '$1 == w && $3 == p {print $4}' "$out/runs.txt" |
            sort -n | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}')
        echo "  $which $phase $m"
    done
done
