#!/usr/bin/env bash
# The Trellis demo: installs what is missing (nats-server >= 2.10, the
# wasm32-wasip2 target), builds, starts a local lattice with `wash up`
# (NATS with JetStream, wadm, one `trellis` host) and deploys the
# `http-hello` application (examples/apps/http-hello.yaml) with
# `wash app deploy`. Then prints what to curl.
#
#   bash scripts/demo.sh          # start (idempotent)
#   bash scripts/demo.sh stop     # stop what it started (wash down)
#
# Environment: NATS_PORT (4222), WASH_HOME (~/.wash: PID and log files),
# CARGO_TARGET_DIR (target).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
NATS_PORT=${NATS_PORT:-4222}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
WASH="$TARGET/release/wash"

if [ "${1:-}" = "stop" ]; then
  exec "$WASH" down
fi

source scripts/prereqs.sh
export PATH="$HOME/.local/bin:$PATH"

echo "==> building trellis, wadm and wash (release; the first build compiles wasmtime and takes a while)"
cargo build --release -p trellis-host -p trellis-wadm -p trellis-wash
echo "==> building guest components (wasm32-wasip2)"
cargo build --release --target wasm32-wasip2 --manifest-path examples/components/Cargo.toml --target-dir target/guests

export WASMCLOUD_CTL_PORT="$NATS_PORT"
if "$WASH" app list >/dev/null 2>&1 && "$WASH" get hosts -o json 2>/dev/null | grep -q '"id"'; then
  echo "==> a lattice with wadm and a host is already up on port $NATS_PORT; reusing it"
else
  echo "==> wash up: NATS (reused if one listens on $NATS_PORT), wadm and a host"
  "$WASH" up -d --nats-port "$NATS_PORT" -l zone=local
fi

if "$WASH" app status http-hello -o json 2>/dev/null | grep -q '"deployed"'; then
  echo "==> http-hello is already deployed"
else
  echo "==> wash app deploy examples/apps/http-hello.yaml"
  "$WASH" app deploy examples/apps/http-hello.yaml
fi

for _ in $(seq 1 100); do curl -fsS "http://127.0.0.1:8000/" >/dev/null 2>&1 && break; sleep 0.2; done
echo
echo "Trellis is up. Try:"
echo "  curl http://127.0.0.1:8000/"
SHOWN_WASH=${WASH#"$ROOT"/}
# wash reads the control port from WASMCLOUD_CTL_PORT; say so when it is not
# the default, or the commands below would look on 4222.
if [ "$NATS_PORT" != 4222 ]; then
  SHOWN_WASH="WASMCLOUD_CTL_PORT=$NATS_PORT $SHOWN_WASH"
fi
echo "  $SHOWN_WASH app status http-hello"
echo "  $SHOWN_WASH get hosts"
echo "Stop it with: bash scripts/demo.sh stop"
