#!/usr/bin/env bash
# Installs the Debian packages Moat needs, only those that are missing.
# Usage: scripts/install-deps.sh [build|test|bench]
#   build: what compiling and serving needs; test: that plus what the test suite uses;
#   bench: that plus wrk and nginx for scripts/bench-gateway.sh.
set -euo pipefail
mode=${1:-build}

pkgs=(g++ cmake make ninja-build ccache pkg-config
      libboost1.81-dev libboost-json1.81-dev libboost-url1.81-dev
      libssl-dev libsqlite3-dev libsodium-dev libtcmalloc-minimal4
      libgtest-dev libgmock-dev libbenchmark-dev)
if [ "$mode" = test ]; then
  pkgs+=(python3 python3-flask curl openssl)
  # Node.js runs the Google client-library compatibility tests; keep a Node that is already there.
  command -v node >/dev/null 2>&1 || pkgs+=(nodejs)
  command -v npm >/dev/null 2>&1 || pkgs+=(npm)
fi
if [ "$mode" = bench ]; then
  pkgs+=(python3 curl wrk util-linux)
  # Any nginx flavour has proxy_pass and auth_request; keep one that is already there.
  command -v nginx >/dev/null 2>&1 || pkgs+=(nginx-light)
fi

missing=()
for p in "${pkgs[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing packages (${missing[*]}); run as root or install them with apt-get" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
