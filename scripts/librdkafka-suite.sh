#!/usr/bin/env bash
# Run librdkafka's own test suite (the `tests/` directory of the librdkafka that the
# rdkafka-sys crate vendors) against a fresh brook: one node, or a cluster.
#
#   [NODES=3] scripts/librdkafka-suite.sh [TESTS]
#
# TESTS is a space-separated list of test numbers (default: the list below, every
# test that needs only a broker: no mock cluster, no SSL/SASL, no transactions or
# ACLs, which brook does not have, no `kafka-topics.sh`). The source is copied to
# target/librdkafka-suite/ and built there once (about 6 minutes on 2 cores). The
# broker gets `num.partitions=4` (the suite's topics are auto-created and its tests
# produce to partitions 0–3) and a cleaner that looks every 100 ms. The suite runs
# up to 5 tests at once in one process, as librdkafka's CI does, except the ones
# that emulate sockets (0076, 0086, 0088, 0118), which run one at a time after
# the others. With NODES=N it runs against N nodes of `brook dev-cluster` (each a
# broker and a controller voter; topics and `__consumer_offsets` replicated N
# ways).
#
# Not run by scripts/test.sh (about 10 minutes with the build); results of the last runs
# are in tests/librdkafka-suite.md.
set -euo pipefail
cd "$(dirname "$0")/.."

default_tests="0001 0002 0003 0004 0005 0007 0008 0011 0012 0013 0014 0015 0017 0018
0019 0020 0021 0022 0026 0028 0029 0030 0031 0033 0034 0036 0038 0039 0040 0041 0042
0044 0045 0046 0047 0048 0049 0050 0051 0053 0054 0055 0056 0057 0058 0059 0060 0061
0062 0063 0065 0067 0068 0069 0070 0073 0074 0075 0076 0078 0082 0083 0084 0085 0086
0088 0089 0090 0091 0093 0094 0099 0100 0102 0112 0113 0114 0118 0122 0123 0125 0127
0130 0132 0137 0140"
tests=${1:-$default_tests}
nodes=${NODES:-1}
[[ $nodes =~ ^[1-9]$ ]] || { echo "NODES must be 1 to 9, not '$nodes'" >&2; exit 2; }
tests=$(echo "$tests" | tr '\n' ' ')
[[ $tests =~ ^[0-9\ ]+$ ]] || { echo "TESTS must be test numbers separated by spaces, not '$tests'" >&2; exit 2; }

rdk_version=$(awk '/^name = "rdkafka-sys"$/ {getline; print $3}' Cargo.lock | tr -d '"' | head -1)
src=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/rdkafka-sys-"$rdk_version"/librdkafka 2>/dev/null | head -1)
if [ -z "$src" ]; then
    echo "the rdkafka-sys $rdk_version source is not in the cargo registry; run cargo fetch" >&2
    exit 1
fi
work=target/librdkafka-suite
lrk="$work/librdkafka-$rdk_version"
if [ ! -x "$lrk/tests/test-runner" ]; then
    rm -rf "$lrk"
    mkdir -p "$work"
    cp -r "$src" "$lrk"
    (cd "$lrk" && ./configure --disable-ssl --disable-gssapi --disable-curl --disable-sasl \
        --disable-zstd --disable-lz4-ext >"../configure.log" 2>&1 \
        && make -j"$(nproc)" libs >"../make.log" 2>&1 \
        && cd tests && make -j"$(nproc)" build >"../../tests-make.log" 2>&1) \
        || { echo "building librdkafka's test runner failed; see $work/*.log" >&2; exit 1; }
fi

cargo build -q -p brook-broker --bin brook
data=$(mktemp -d /tmp/brook-librdkafka-suite.XXXXXX)
base=$((20000 + RANDOM % 20000))
# Settings every node gets: see the header.
extra='"num.partitions" = 4
"log.cleaner.backoff.ms" = 100'
if [ "$nodes" -eq 1 ]; then
    mkdir -p "$data/node-1"
    cat >"$data/node-1/brook.toml" <<EOF
listeners = "PLAINTEXT://127.0.0.1:$base"
"admin.listener" = "127.0.0.1:$((base + 1))"
"log.dirs" = "$data/node-1/data"
$extra
EOF
else
    # brook dev-cluster's layout: node N's Kafka port is base + 10·(N−1).
    target/debug/brook dev-cluster --nodes "$nodes" --dir "$data" --base-port "$base" --write-only >/dev/null
    for n in $(seq "$nodes"); do
        printf '%s\n"default.replication.factor" = %s\n"offsets.topic.replication.factor" = %s\n' \
            "$extra" "$nodes" "$nodes" >>"$data/node-$n/brook.toml"
    done
fi
pids=()
# The brokers' data and logs stay for a look after a failure.
trap 'kill "${pids[@]}" 2>/dev/null || true; [ "${status:-1}" -ne 0 ] || rm -rf "$data"' EXIT
brokers=()
for n in $(seq "$nodes"); do
    target/debug/brook serve --config "$data/node-$n/brook.toml" --ready-file "$data/node-$n/ready.json" \
        >"$data/node-$n/brook.log" 2>&1 &
    pids+=($!)
    brokers+=("127.0.0.1:$((base + 10 * (n - 1)))")
done
for n in $(seq "$nodes"); do
    for _ in $(seq 200); do
        [ -s "$data/node-$n/ready.json" ] && break
        kill -0 "${pids[$((n - 1))]}" 2>/dev/null || { echo "node $n exited; see $data/node-$n/brook.log" >&2; exit 1; }
        sleep 0.1
    done
    [ -s "$data/node-$n/ready.json" ] || { echo "node $n did not become ready; see $data/node-$n/brook.log" >&2; exit 1; }
done

list=$(IFS=,; echo "${brokers[*]}")
printf 'metadata.broker.list=%s\ntest.timeout.multiplier=2\n' "$list" >"$lrk/tests/test.conf"
log="$work/run.log"
echo "running librdkafka $rdk_version tests against $nodes brook node(s) at $list (log: $log, brokers' logs under $data)" >&2
# The tests that emulate sockets inside the test process (sockem) run one at a
# time after the others: beside other tests they can close or find closed another
# test's descriptors.
sockem=" 0076 0086 0088 0118 "
parallel="" alone=""
for t in $tests; do
    if [[ $sockem == *" $t "* ]]; then alone+="$t "; else parallel+="$t "; fi
done
run() { # TESTS, then test-runner flags
    local which=$1
    shift
    [ -n "${which// /}" ] || return 0
    (cd "$lrk/tests" && LD_LIBRARY_PATH="$PWD/../src:$PWD/../src-cpp" TEST_KAFKA_VERSION=4.0.0 \
        TESTS="$which" timeout 3000 ./test-runner -Q -L "$@") >>"$log" 2>&1
}
status=1
: >"$log"
rc=0
run "$parallel" || rc=$?
run "$alone" -p1 || rc=$?
status=$rc
grep -a '^|' "$log" | sed 's/\x1b\[[0-9;]*m//g' || true
echo "test-runner exit status $status" >&2
exit "$status"
