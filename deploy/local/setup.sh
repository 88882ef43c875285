#!/usr/bin/env bash
# Installs what omnimeter needs on a fresh Debian/Ubuntu machine with a Rust toolchain.
#   deploy/local/setup.sh          build tools + the Parquet readers used by the tests (DuckDB, pyarrow)
#   deploy/local/setup.sh --test   also the test peers: a Kafka-compatible broker (tansu), Prometheus and an
#                                  S3-compatible server (moto)
# Everything is skipped when already present, so it is cheap to run again.
set -euo pipefail

want_test=false
[[ "${1:-}" == "--test" ]] && want_test=true

sudo=""
[[ $(id -u) -ne 0 ]] && sudo="sudo"

apt_pkgs=()
command -v cmake >/dev/null || apt_pkgs+=(cmake)          # rdkafka builds its bundled librdkafka with cmake
command -v cc >/dev/null || apt_pkgs+=(build-essential)
# librdkafka's TLS/SASL support compiles against OpenSSL and (for OAUTHBEARER) curl headers.
for pkg in libssl-dev libcurl4-openssl-dev pkg-config; do
  dpkg -s "$pkg" >/dev/null 2>&1 || apt_pkgs+=("$pkg")
done
if $want_test; then
  command -v promtool >/dev/null || apt_pkgs+=(prometheus)  # real Prometheus server + promtool for the metrics tests
  command -v chromium >/dev/null || apt_pkgs+=(chromium)    # headless browser for the report test
fi
if ((${#apt_pkgs[@]})); then
  echo "setup: apt-get install ${apt_pkgs[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${apt_pkgs[@]}" >/dev/null
fi

if ! python3 -c 'import duckdb, pyarrow' 2>/dev/null; then
  echo "setup: pip install duckdb pyarrow" >&2
  python3 -m pip install -q duckdb pyarrow
fi
if $want_test && ! python3 -c 'import yaml' 2>/dev/null; then
  echo "setup: pip install pyyaml (deploy manifest checks)" >&2
  python3 -m pip install -q pyyaml
fi
if $want_test && ! python3 -c 'import moto.server, boto3, flask_cors' 2>/dev/null; then
  echo "setup: pip install moto[server] (S3-compatible server for the bucket-output tests)" >&2
  python3 -m pip install -q "moto[server]"
fi

if $want_test && ! command -v tansu >/dev/null; then
  # About 20 minutes on 2 cores, once per machine.
  echo "setup: cargo install tansu (Kafka-compatible broker for the integration tests)" >&2
  cargo install --quiet tansu --features dynostore,libsql
fi
echo "setup: ready" >&2
