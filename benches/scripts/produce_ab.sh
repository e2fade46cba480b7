#!/usr/bin/env bash
# Single-node produce runs of librdkafka's `rdkafka_performance` (built by
# benches/perf-tool.sh) against a fresh `brook serve` per run, with control of
# the memory the page cache lands in. On a VM whose balloon reports free
# pages to the host (virtio-balloon VIRTIO_BALLOON_F_REPORTING), memory left
# free for a few seconds costs a host fault per page on its first write; a
# broker in service recycles page cache it already holds.
#
#   benches/scripts/produce_ab.sh ab ROUNDS SIZE COUNT ACKS BIN_A BIN_B
#       interleaved A/B of two brook binaries, memory warmed before each run
#   benches/scripts/produce_ab.sh memory ROUNDS SIZE COUNT BIN
#       one binary, acks=1: warm memory vs the same after 10 s of waiting
#   benches/scripts/produce_ab.sh cpu ROUNDS BIN
#       1 KiB acks=1, 2 M records, warm: the tool's and the target's CPU
#       against the e2e sink (the client's ceiling), the storing sink (the
#       sink, but every record set written to a file and synced: what any
#       broker that stores through the page cache must at least do) and brook
#
# ACKS is 1 or -1 (acks=all, idempotent unless IDEMPOTENCE=false). Tool
# settings: linger.ms=5, batch.size=1000000, no compression, one partition.
# Each line printed: target, msgs/s, MB/s, CPU ticks (10 ms) of the target.
set -euo pipefail
cd "$(dirname "$0")/../.."
tool=target/release/rdkafka_performance
[ -x "$tool" ] || { echo "build $tool first: benches/perf-tool.sh 1 100 1 1000" >&2; exit 1; }
work=$(mktemp -d /tmp/brook-produce-ab.XXXXXX)
port=${PORT:-39092}
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
cat > "$work/brook.toml" <<EOF
"log.dirs" = ["$work/data"]
listeners = ["127.0.0.1:$port"]
"admin.listener" = "127.0.0.1:$((port + 1))"
EOF

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
warm() { # write and delete a file of $1 MiB beside the data
    dd if=/dev/zero of="$work/warm" bs=1M count="$1" 2>/dev/null
    rm "$work/warm"
}
wait_ready() {
    for _ in $(seq 300); do [ -s "$1" ] && return 0; sleep 0.1; done
    echo "no ready file $1" >&2
    return 1
}
produce() { # bootstrap size count acks
    local idem=false
    [ "$4" = -1 ] && idem=${IDEMPOTENCE:-true}
    "$tool" -P -t "ab$RANDOM" -p 0 -b "$1" -s "$2" -c "$3" -a "$4" -X linger.ms=5 \
        -X batch.size=1000000 -X compression.type=none -X enable.idempotence="$idem" 2>&1 |
        grep "messages produced" | tail -1 | sed -E 's/.* ([0-9]+) msgs\/s and ([0-9.]+) MB\/s.*/\1 \2/'
}
# run_brook BIN SIZE COUNT ACKS MEMORY(warm|cold) LABEL
run_brook() {
    rm -rf "$work/data" "$work/ready.json"
    "$1" serve --config "$work/brook.toml" --ready-file "$work/ready.json" > "$work/log.txt" 2>&1 &
    local bp=$!
    wait_ready "$work/ready.json"
    warm $(($2 * $3 * 12 / 10 / 1048576 + 1))
    [ "$5" = cold ] && sleep 10
    local t0 out
    t0=$(ticks $bp)
    out=$(produce "127.0.0.1:$port" "$2" "$3" "$4")
    echo "$6 $out cpu $(($(ticks $bp) - t0))"
    kill $bp
    wait $bp 2>/dev/null || true
}

case ${1:-} in
ab)
    [ $# -eq 7 ] || { echo "usage: $0 ab ROUNDS SIZE COUNT ACKS BIN_A BIN_B" >&2; exit 2; }
    for r in $(seq "$2"); do
        if ((r % 2)); then order=("$6" "$7"); else order=("$7" "$6"); fi
        for b in "${order[@]}"; do run_brook "$b" "$3" "$4" "$5" warm "$(basename "$b")"; done
    done
    ;;
memory)
    [ $# -eq 5 ] || { echo "usage: $0 memory ROUNDS SIZE COUNT BIN" >&2; exit 2; }
    for r in $(seq "$2"); do
        if ((r % 2)); then order=(warm cold); else order=(cold warm); fi
        for m in "${order[@]}"; do run_brook "$5" "$3" "$4" 1 "$m" "$m"; done
    done
    ;;
cpu)
    [ $# -eq 3 ] || { echo "usage: $0 cpu ROUNDS BIN" >&2; exit 2; }
    cpu_run() { # label target-pid bootstrap
        warm 2400
        local s0 m0 out
        s0=$(ticks "$2")
        m0=$(awk '/^cpu /{print $2 + $3 + $4 + $7 + $8}' /proc/stat)
        out=$(/usr/bin/time -f "tool_cpu_s %U %S" -o "$work/time.txt" \
            "$tool" -P -t "cpu$RANDOM" -p 0 -b "$3" -s 1024 -c 2000000 -a 1 -X linger.ms=5 \
            -X batch.size=1000000 -X compression.type=none -X enable.idempotence=false 2>&1 |
            grep -o '[0-9.]* MB/s' | tail -1)
        echo "$1 $out $(awk '{print $1, $2 + $3}' "$work/time.txt") target_ticks $(($(ticks "$2") - s0))" \
            "machine_busy_ticks $(($(awk '/^cpu /{print $2 + $3 + $4 + $7 + $8}' /proc/stat) - m0))"
    }
    cpu_sink() { # label [extra sink arguments]
        local label=$1 sp
        shift
        rm -rf "$work/sink.json" "$work/store"
        target/release/e2e sink --ready-file "$work/sink.json" --record-size 1024 \
            --log-records 1000 --batch-bytes 1000000 "$@" > "$work/sink.log" 2>&1 &
        sp=$!
        wait_ready "$work/sink.json"
        cpu_run "$label" $sp "$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['kafka'])" "$work/sink.json")"
        kill $sp; wait $sp 2>/dev/null || true
        rm -rf "$work/store"
    }
    for _ in $(seq "$2"); do
        cpu_sink sink
        cpu_sink storing-sink --store-dir "$work/store"
        rm -rf "$work/data" "$work/ready.json"
        "$3" serve --config "$work/brook.toml" --ready-file "$work/ready.json" > "$work/log.txt" 2>&1 &
        bp=$!
        wait_ready "$work/ready.json"
        cpu_run brook $bp "127.0.0.1:$port"
        kill $bp; wait $bp 2>/dev/null || true
    done
    ;;
*)
    echo "usage: $0 ab|memory|cpu ... (see the header)" >&2
    exit 2
    ;;
esac
