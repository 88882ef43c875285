#!/usr/bin/env bash
# Starts a local Kafka-compatible broker (tansu, in-memory storage) on loopback and
# creates the events topic, so the real Kafka path can be tried in two commands:
#
#   deploy/local/broker.sh                 # broker on 127.0.0.1:9092, topic omnimeter-events (6 partitions)
#   cargo run --release -- run --config config/omnimeter.toml
#
# Environment: PORT (9092), TOPIC (omnimeter-events), PARTITIONS (6), STORAGE (memory://tansu/;
# sqlite://… keeps data across restarts). Stop it with: kill "$(cat /tmp/omnimeter-tansu.pid)"
set -euo pipefail
PORT="${PORT:-9092}"
TOPIC="${TOPIC:-omnimeter-events}"
PARTITIONS="${PARTITIONS:-6}"
STORAGE="${STORAGE:-memory://tansu/}"
command -v tansu >/dev/null || { echo "broker.sh: tansu is missing: run deploy/local/setup.sh --test" >&2; exit 2; }
url="tcp://127.0.0.1:${PORT}"
tansu broker --listener-url "$url" --advertised-listener-url "$url" --storage-engine "$STORAGE" \
  >/tmp/omnimeter-tansu.log 2>&1 &
echo $! > /tmp/omnimeter-tansu.pid
for _ in $(seq 1 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/${PORT}") 2>/dev/null && break
  sleep 0.1
done
tansu topic create "$TOPIC" --broker "$url" --partitions "$PARTITIONS"
echo "broker.sh: broker on 127.0.0.1:${PORT} (pid $(cat /tmp/omnimeter-tansu.pid), log /tmp/omnimeter-tansu.log), topic ${TOPIC} with ${PARTITIONS} partitions" >&2
