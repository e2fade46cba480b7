#!/bin/bash
# Measure acks=all produce on a 3-node `brook dev-cluster` with confluent-kafka
# from the test venv (.venv-test, made by scripts/install-test-deps.sh).
#
#   benches/scripts/cluster_produce.sh BROOK_BIN new-topic  TAG BASE_PORT
#       first produce to each of ROUNDS (7) new topics (3 partitions, RF 3) while every
#       follower long-polls, and the same 1 s later (new_topic_produce.py)
#   benches/scripts/cluster_produce.sh BROOK_BIN many       TAG BASE_PORT [TOPICS] [RATE]
#       TOPICS single-partition RF-3 topics (1000), RATE records/s (300) for
#       20 s round-robin: brook CPU and ack latency (many_partitions.py)
#
# Results and readings: benches/results/replication.md.
set -euo pipefail
bin=$1 mode=$2 tag=$3 base=$4
root=$(cd "$(dirname "$0")/../.." && pwd)
py=$root/.venv-test/bin/python
[[ -x $py ]] || { echo "no $py: run scripts/install-test-deps.sh" >&2; exit 2; }
d=$(mktemp -d /tmp/brook-cluster-produce-XXXX)
"$bin" dev-cluster --nodes 3 --dir "$d" --base-port "$base" >"$d/out.log" 2>&1 &
pid=$!
trap 'kill -INT $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$d"' EXIT
ready=0
for _ in $(seq 120); do
  if "$py" -c "
import sys
from confluent_kafka.admin import AdminClient
md = AdminClient({'bootstrap.servers': '127.0.0.1:$base'}).list_topics(timeout=2)
sys.exit(0 if len(md.brokers) == 3 else 1)" 2>/dev/null; then ready=1; break; fi
  sleep 0.5
done
[[ $ready == 1 ]] || { echo "the cluster did not come up; its log: $d/out.log" >&2; cat "$d/out.log" >&2; exit 1; }
case $mode in
  new-topic) "$py" "$root/benches/scripts/new_topic_produce.py" "127.0.0.1:$base" "${ROUNDS:-7}" "$tag" ;;
  many) "$py" "$root/benches/scripts/many_partitions.py" "127.0.0.1:$base" "${5:-1000}" "${6:-300}" 20 "$tag" "$(pgrep -P $pid | paste -sd,)" ;;
  *) echo "mode must be new-topic or many, not '$mode'" >&2; exit 2 ;;
esac
