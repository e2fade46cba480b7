#!/usr/bin/env bash
# Produce throughput with librdkafka's own load tool, `rdkafka_performance`
# (examples/rdkafka_performance.c of the librdkafka that the `rdkafka` crate
# vendors), against brook and against the e2e sink (the client's ceiling),
# interleaved, on this machine.
#
#   benches/perf-tool.sh [ROUNDS] [SIZE] [ACKS] [COUNT] [OUTPUT]
#
# ACKS is 1 or all. Each round starts a fresh `brook serve` (empty data dir
# under $DATA_PARENT, default /tmp; default config, so acks=all is answered
# after fsync) and a fresh sink, and runs the tool once against each, the
# order alternating by round. The tool's settings: linger.ms=5,
# batch.size=1000000, compression none, idempotence on for acks=all (off
# with IDEMPOTENCE=false); one partition. Prints each run and writes a markdown table of medians to OUTPUT
# (default benches/results/perf-tool.md). BROOK_BIN picks the brook binary (A/B runs).
# WARM=1 writes and deletes a file 1.2 times the run's data beside it just
# before each run (either target), so the page cache brook fills is memory
# this guest touched a moment before: on a VM whose balloon reports free
# pages to the host, memory free for a few seconds costs a host fault per
# page on its first write (benches/results/e2e.md), which the sink never pays.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5} size=${2:-100} acks=${3:-1} count=${4:-5000000}
out=${5:-benches/results/perf-tool.md}
data_parent=${DATA_PARENT:-/tmp}
case $acks in
1) tool_acks=1 idem=false ;;
all) tool_acks=-1 idem=${IDEMPOTENCE:-true} ;;
*) echo "ACKS must be 1 or all, not '$acks'" >&2; exit 2 ;;
esac
[[ $idem =~ ^(true|false)$ ]] || { echo "IDEMPOTENCE must be true or false, not '$idem'" >&2; exit 2; }
[[ $rounds =~ ^[1-9][0-9]*$ ]] || { echo "ROUNDS must be a positive integer, not '$rounds'" >&2; exit 2; }
[[ $size =~ ^[1-9][0-9]*$ ]] || { echo "SIZE must be a positive integer, not '$size'" >&2; exit 2; }
[[ $count =~ ^[1-9][0-9]*$ ]] || { echo "COUNT must be a positive integer, not '$count'" >&2; exit 2; }

cargo build -q --release -p brook-broker --bin brook -p brook-benches --bin e2e
brook=${BROOK_BIN:-target/release/brook}
# brook reads BROOK_* variables as its own settings: not this one.
unset BROOK_BIN
e2e=target/release/e2e
tool=target/release/rdkafka_performance

# Build the tool from the vendored librdkafka, linked against the static
# library the rdkafka-sys build script produced (same version as the tests').
rdk_version=$(awk '/^name = "rdkafka-sys"$/ {getline; print $3}' Cargo.lock | tr -d '"' | head -1)
src=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/rdkafka-sys-"$rdk_version"/librdkafka 2>/dev/null | head -1)
lib=$(ls -t target/release/build/rdkafka-sys-*/out/src/librdkafka.a 2>/dev/null | head -1)
zstd=$(ls -t target/release/build/zstd-sys-*/out/libzstd.a 2>/dev/null | head -1)
if [ -z "$src" ] || [ -z "$lib" ] || [ -z "$zstd" ]; then
    echo "cannot build rdkafka_performance: need the rdkafka-sys $rdk_version source" \
        "(found: '${src:-none}') and its release build's librdkafka.a and libzstd.a" \
        "(found: '${lib:-none}', '${zstd:-none}')" >&2
    exit 1
fi
if [ ! -x "$tool" ] || [ "$tool" -ot "$lib" ]; then
    gcc -O2 -w -o "$tool" "$src/examples/rdkafka_performance.c" \
        -I"$(dirname "$lib")" -I"$src/src" "$lib" "$zstd" -lpthread -lz -lm -ldl -lrt
fi

work=$(mktemp -d "$data_parent/brook-perf-tool.XXXXXX")
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# Wait for ready file $1 of the process logging to $2.
wait_file() {
    for _ in $(seq 300); do [ -s "$1" ] && return 0; sleep 0.1; done
    echo "no $1 after 30 s; the end of $2:" >&2
    tail -n 20 "$2" >&2
    return 1
}

start_brook() {
    local dir=$work/brook-$1
    mkdir -p "$dir"
    cat > "$dir/brook.toml" <<EOF
"log.dirs" = ["$dir/data"]
listeners = ["127.0.0.1:0"]
"admin.listener" = "127.0.0.1:0"
EOF
    "$brook" serve --config "$dir/brook.toml" --ready-file "$dir/ready.json" > "$dir/log.txt" 2>&1 &
    pids+=($!)
    wait_file "$dir/ready.json" "$dir/log.txt"
    bootstrap=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["kafka"])' "$dir/ready.json")
    "$brook" topic create --bootstrap "$bootstrap" --partitions 1 perf > /dev/null
}

start_sink() {
    local dir=$work/sink-$1
    mkdir -p "$dir"
    "$e2e" sink --ready-file "$dir/ready.json" --record-size "$size" --log-records 1000 \
        --batch-bytes 1000000 > "$dir/log.txt" 2>&1 &
    pids+=($!)
    wait_file "$dir/ready.json" "$dir/log.txt"
    bootstrap=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["kafka"])' "$dir/ready.json")
}

# The disk's own rate for what an acks=all run asks of it: 1 MB appends, each
# followed by fdatasync, into a new file beside brook's data; prints MB/s.
disk_probe() {
    python3 - "$work/disk-probe" <<'PY'
import os, sys, time
block = b"x" * 1_000_000
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o600)
start, n = time.monotonic(), 0
while n < 512 and time.monotonic() - start < 3.0:
    os.write(fd, block)
    os.fdatasync(fd)
    n += 1
elapsed = time.monotonic() - start
os.close(fd)
os.unlink(sys.argv[1])
print(f"{n * len(block) / elapsed / 1e6:.1f}")
PY
}

# One run of the tool; prints msgs/s.
run_tool() {
    local line
    line=$("$tool" -P -t perf -p 0 -b "$1" -s "$size" -c "$count" -a "$tool_acks" \
        -X linger.ms=5 -X batch.size=1000000 -X compression.type=none \
        -X enable.idempotence="$idem" -q 2>&1 | grep ' delivered ' | tail -1)
    # "... delivered (offset N, F failed) in Tms: R msgs/s and M MB/s ..."
    [[ $line =~ \(offset\ [0-9-]+,\ ([0-9]+)\ failed\).*:\ ([0-9]+)\ msgs/s ]] || {
        echo "unexpected tool output: $line" >&2
        return 1
    }
    [ "${BASH_REMATCH[1]}" = 0 ] || { echo "${BASH_REMATCH[1]} messages failed: $line" >&2; return 1; }
    echo "${BASH_REMATCH[2]}"
}

runs=$work/runs.txt
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
started=$(date -u '+%Y-%m-%d %H:%M:%S')
warm=${WARM:-0}
[[ $warm =~ ^[01]$ ]] || { echo "WARM must be 0 or 1, not '$warm'" >&2; exit 2; }
warm_mb=$((size * count * 12 / 10 / 1000000 + 1))
for i in $(seq "$rounds"); do
    order="brook sink"
    [ $((i % 2)) = 0 ] && order="sink brook"
    for target in $order; do
        if [ "$target" = brook ]; then start_brook "$i"; else start_sink "$i"; fi
        if [ "$warm" = 1 ]; then
            dd if=/dev/zero of="$work/warm" bs=1M count="$warm_mb" 2>/dev/null
            rm "$work/warm"
        fi
        rate=$(run_tool "$bootstrap")
        kill "${pids[-1]}"
        wait "${pids[-1]}" 2>/dev/null || true
        unset 'pids[-1]'
        rm -rf "$work/brook-$i/data"
        echo "$target $i $rate load=$(cut -d' ' -f1 /proc/loadavg)" | tee -a "$runs"
    done
    if [ "$acks" = all ]; then
        echo "disk $i $(disk_probe)" | tee -a "$runs"
    fi
done
median() {
    sort -n | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'
}
b=$(awk '$1 == "brook" {print $3}' "$runs" | median)
s=$(awk '$1 == "sink" {print $3}' "$runs" | median)
b_all=$(awk '$1 == "brook" {printf "%s%s", sep, $3; sep = ", "}' "$runs")
s_all=$(awk '$1 == "sink" {printf "%s%s", sep, $3; sep = ", "}' "$runs")
ratio=$(awk -v b="$b" -v s="$s" 'BEGIN {printf "%.2f", b / s}')
mb() { awk -v r="$1" -v z="$size" 'BEGIN {printf "%.1f", r * z / 1e6}'; }
disk_line=""
if [ "$acks" = all ]; then
    d=$(awk '$1 == "disk" {print $3}' "$runs" | median)
    d_all=$(awk '$1 == "disk" {printf "%s%s", sep, $3; sep = ", "}' "$runs")
    limit=$(awk -v s="$(mb "$s")" -v d="$d" 'BEGIN {print (d < s) ? d : s}')
    disk_line="| disk: 1 MB appends each followed by fdatasync, once per round | | $d | $d_all MB/s |"
    ratio="$ratio; against the smaller of the sink and the disk ($limit MB/s): $(awk -v b="$(mb "$b")" -v l="$limit" 'BEGIN {printf "%.2f", b / l}')"
fi
{
    echo "# Produce throughput with librdkafka's rdkafka_performance: brook vs the sink"
    echo
    echo "- date (UTC, start): $started; commit: $(git rev-parse --short HEAD)"
    echo "- machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); load average at start: $load_start, at end: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "- tool: \`examples/rdkafka_performance.c\` of rdkafka-sys $rdk_version (librdkafka ${rdk_version#*+}), built by this script with gcc"
    echo "- run: \`$([ "$warm" = 1 ] && echo "WARM=1 ")benches/perf-tool.sh $rounds $size $acks $count\`: $rounds rounds, each a fresh brook (default config, data under $data_parent) and a fresh sink, the order alternating"
    if [ "$warm" = 1 ]; then
        echo "- memory: \`WARM=1\`: $warm_mb MB written and deleted beside the data just before each run"
    else
        echo "- memory: as the kernel hands it out (no WARM=1)"
    fi
    echo "- tool settings: \`-P -s $size -c $count -a $tool_acks -X linger.ms=5 -X batch.size=1000000 -X compression.type=none -X enable.idempotence=$idem\`, one partition"
    echo
    echo "| target | median msgs/s | median MB/s | runs (msgs/s) |"
    echo "|---|---:|---:|---|"
    echo "| brook | $b | $(mb "$b") | $b_all |"
    echo "| sink (client ceiling) | $s | $(mb "$s") | $s_all |"
    [ -z "$disk_line" ] || echo "$disk_line"
    echo
    echo "brook / sink (medians): $ratio"
} > "$out"
cat "$out"
