#!/usr/bin/env bash
# Installs what omnimeter needs on a fresh Debian/Ubuntu machine with a Rust toolchain.
#   deploy/local/setup.sh          build tools + the Parquet readers used by the tests (DuckDB, pyarrow)
#   deploy/local/setup.sh --test   also the test peers: a Kafka-compatible broker (tansu), Prometheus, an
#                                  S3-compatible server (moto), Apache Spark (pyspark + a JRE), Chromium
# Everything is skipped when already present, so it is cheap to run again.
# Python packages go to a virtual environment in the repository, `.venv/` (Debian's own
# Python refuses system-wide pip installs, PEP 668); the tests use it when it exists.
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
  command -v java >/dev/null || apt_pkgs+=(openjdk-17-jre-headless)  # runs Spark for the Spark reader test
fi
if ((${#apt_pkgs[@]})); then
  echo "setup: apt-get install ${apt_pkgs[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${apt_pkgs[@]}" >/dev/null
fi

venv="$(cd "$(dirname "$0")/../.." && pwd)/.venv"
if [[ ! -x "$venv/bin/python3" ]]; then
  echo "setup: python3 -m venv $venv" >&2
  # Packages the system already has stay visible; what is missing is installed in the venv.
  if ! python3 -m venv --system-site-packages "$venv" 2>/dev/null; then
    rm -rf "$venv"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq python3-venv >/dev/null
    python3 -m venv --system-site-packages "$venv"
  fi
fi
py="$venv/bin/python3"
if ! "$py" -c 'import duckdb, pyarrow' 2>/dev/null; then
  echo "setup: pip install duckdb pyarrow (into .venv)" >&2
  "$py" -m pip install -q duckdb pyarrow
fi
if $want_test && ! "$py" -c 'import yaml, jsonschema' 2>/dev/null; then
  echo "setup: pip install pyyaml jsonschema (deploy manifest and event schema checks, into .venv)" >&2
  "$py" -m pip install -q pyyaml jsonschema
fi
if $want_test && ! "$py" -c 'import pyspark' 2>/dev/null; then
  echo "setup: pip install pyspark (Apache Spark reads the tables in the tests, into .venv)" >&2
  "$py" -m pip install -q pyspark
fi
if $want_test && ! "$py" -c 'import moto.server, boto3, flask_cors' 2>/dev/null; then
  echo "setup: pip install moto[server] (S3-compatible server for the bucket-output tests, into .venv)" >&2
  "$py" -m pip install -q "moto[server]"
fi

if $want_test && ! command -v tansu >/dev/null; then
  # About 20 minutes on 2 cores, once per machine.
  echo "setup: cargo install tansu (Kafka-compatible broker for the integration tests)" >&2
  cargo install --quiet tansu --features dynostore,libsql
fi
echo "setup: ready" >&2
