#!/usr/bin/env bash
# Re-captures the golden request vectors (see README.md). Run from the repo root
# after `cargo build -p brook-broker --bin brook` (or with CAPTURE_BROOK=<binary>):
#   protocol/tests/vectors/capture.sh [kcat|librdkafka|kafka-python]...
# Each client gets its own broker (so sequence numbers start at 0) and its own
# directory; frames are deduplicated by (API, version) — and by compression
# codec for Produce, all-topics or not for Metadata — and renamed
# <NNN>-<api>-v<version>[-<note>].bin.
set -euo pipefail

root=$(pwd)
here=$root/protocol/tests/vectors
brook=${CAPTURE_BROOK:-$root/target/debug/brook}
python=$root/.venv-test/bin/python
clients=("$@")
[ ${#clients[@]} -gt 0 ] || clients=(kcat librdkafka kafka-python)

run_client() {
    local client=$1 bootstrap=$2
    case $client in
    kcat)
        kcat -b "$bootstrap" -L >/dev/null
        # Values are compressible: librdkafka sends a batch uncompressed when
        # compression would not make it smaller.
        pad=$(printf 'x%.0s' $(seq 200))
        for codec in none gzip snappy lz4 zstd; do
            printf 'k1:%s-1-%s\nk2:%s-2-%s\n' "$codec" "$pad" "$codec" "$pad" |
                kcat -b "$bootstrap" -P -t gv -p 0 -K: -z "$codec" -X enable.idempotence=true
        done
        kcat -b "$bootstrap" -C -t gv -p 0 -o beginning -c 10 -e >/dev/null
        # Balanced consumer group (subscribe, join, sync, commit on exit).
        timeout 60 kcat -b "$bootstrap" -G gv-group-kcat -X auto.offset.reset=earliest -c 10 gv >/dev/null
        ;;
    librdkafka) BROOK_BOOTSTRAP=$bootstrap "$python" "$here/drive_confluent_kafka.py" ;;
    kafka-python) BROOK_BOOTSTRAP=$bootstrap "$python" "$here/drive_kafka_python.py" ;;
    *) echo "unknown client $client" >&2; exit 2 ;;
    esac
}

for client in "${clients[@]}"; do
    work=$(mktemp -d)
    mkdir -p "$work/raw" "$work/log"
    cat >"$work/brook.toml" <<TOML
log.dirs = ["$work/log"]
listeners = "127.0.0.1:0"
admin.listener = "127.0.0.1:0"
TOML
    BROOK_CAPTURE_DIR=$work/raw "$brook" serve --config "$work/brook.toml" \
        --ready-file "$work/ready" >"$work/brook.out" 2>&1 &
    pid=$!
    for _ in $(seq 100); do [ -f "$work/ready" ] && break; sleep 0.1; done
    [ -f "$work/ready" ] || { cat "$work/brook.out" >&2; exit 1; }
    bootstrap=$("$python" -c 'import json,sys; print(json.load(open(sys.argv[1]))["kafka"])' "$work/ready")
    run_client "$client" "$bootstrap"
    kill "$pid"
    wait "$pid" || true
    rm -rf "${here:?}/$client"
    mkdir -p "$here/$client"
    "$python" - "$work/raw" "$here/$client" <<'PY'
import os, struct, sys

NAMES = {0: "produce", 1: "fetch", 2: "list_offsets", 3: "metadata", 8: "offset_commit",
         9: "offset_fetch", 10: "find_coordinator", 11: "join_group", 12: "heartbeat",
         13: "leave_group", 14: "sync_group", 15: "describe_groups", 16: "list_groups",
         18: "api_versions", 19: "create_topics", 20: "delete_topics", 21: "delete_records",
         22: "init_producer_id", 23: "offset_for_leader_epoch", 32: "describe_configs",
         33: "alter_configs", 37: "create_partitions", 42: "delete_groups",
         44: "incremental_alter_configs", 47: "offset_delete", 60: "describe_cluster"}
CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]


def codec(frame):
    # Clients send base offset 0 and magic 2: find the batch header that fits.
    for i in range(len(frame) - 23):
        if frame[i:i + 8] == bytes(8) and frame[i + 16] == 2:
            (length,) = struct.unpack(">i", frame[i + 8:i + 12])
            if 49 <= length <= len(frame) - i - 12:
                return CODECS[struct.unpack(">h", frame[i + 21:i + 23])[0] & 7]
    return "unknown"


def all_topics(frame, version):
    # Metadata with a null topic array asks for every topic.
    (client_len,) = struct.unpack(">h", frame[8:10])
    at = 10 + max(client_len, 0)
    if version >= 9:  # flexible: header tag count (0), then compact array length
        return frame[at + 1] == 0
    return struct.unpack(">i", frame[at:at + 4])[0] == -1


raw, out = sys.argv[1], sys.argv[2]
seen, n = set(), 0
for name in sorted(os.listdir(raw)):
    frame = open(os.path.join(raw, name), "rb").read()
    key, version = struct.unpack(">hh", frame[:4])
    suffix = "-" + codec(frame) if key == 0 else ""
    if key == 3 and all_topics(frame, version):
        suffix = "-all-topics"
    if (key, version, suffix) in seen or len(frame) > 8192:
        continue
    seen.add((key, version, suffix))
    with open(os.path.join(out, f"{n:03d}-{NAMES.get(key, key)}-v{version}{suffix}.bin"), "wb") as f:
        f.write(frame)
    n += 1
print(f"{out}: {n} vectors")
PY
    rm -rf "$work"
done
