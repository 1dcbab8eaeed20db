#!/usr/bin/env bash
# The Trellis demo: installs what is missing (nats-server >= 2.10, the
# wasm32-wasip2 target), builds, starts a local lattice (NATS with JetStream
# and one `trellis` host) and deploys the `http-hello` component behind the
# host's built-in HTTP server. Then prints what to curl.
#
#   bash scripts/demo.sh          # start (idempotent)
#   bash scripts/demo.sh stop     # stop what it started
#
# Environment: NATS_PORT (4222), HTTP_PORT (8000), TRELLIS_DEMO_DIR (~/.trellis-demo).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
STATE=${TRELLIS_DEMO_DIR:-$HOME/.trellis-demo}
NATS_PORT=${NATS_PORT:-4222}
HTTP_PORT=${HTTP_PORT:-8000}
NATS_URL="nats://127.0.0.1:$NATS_PORT"
mkdir -p "$STATE"

stop() {
  for name in trellis nats; do
    if [ -f "$STATE/$name.pid" ]; then
      kill "$(cat "$STATE/$name.pid")" 2>/dev/null && echo "stopped $name" || true
      rm -f "$STATE/$name.pid"
    fi
  done
}
if [ "${1:-}" = "stop" ]; then stop; exit 0; fi

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

source scripts/prereqs.sh
export PATH="$HOME/.local/bin:$PATH"

echo "==> building trellis and wash (release; the first build compiles wasmtime and takes a while)"
cargo build --release -p trellis-host -p trellis-wash
echo "==> building guest components (wasm32-wasip2)"
cargo build --release --target wasm32-wasip2 --manifest-path examples/components/Cargo.toml --target-dir target/guests
WASH="$ROOT/target/release/wash --nats-url $NATS_URL"

if port_open "$NATS_PORT"; then
  echo "==> reusing the NATS server already listening on port $NATS_PORT"
else
  echo "==> starting nats-server with JetStream on port $NATS_PORT"
  nohup nats-server -js -a 127.0.0.1 -p "$NATS_PORT" -sd "$STATE/jetstream" >"$STATE/nats.log" 2>&1 &
  echo $! >"$STATE/nats.pid"
  for _ in $(seq 1 100); do port_open "$NATS_PORT" && break; sleep 0.1; done
  port_open "$NATS_PORT" || { echo "nats-server did not start; see $STATE/nats.log" >&2; exit 1; }
fi

if $WASH get hosts -o json 2>/dev/null | grep -q '"id"'; then
  echo "==> a host is already running on the lattice"
else
  echo "==> starting a trellis host (log: $STATE/trellis.log)"
  nohup "$ROOT/target/release/trellis" --nats-url "$NATS_URL" --allow-file-load -l zone=local \
    >"$STATE/trellis.log" 2>&1 &
  echo $! >"$STATE/trellis.pid"
  for _ in $(seq 1 100); do $WASH get hosts -o json 2>/dev/null | grep -q '"id"' && break; sleep 0.2; done
fi
HOST_ID=$($WASH get hosts -o json | sed -nE 's/.*"id": ?"(N[A-Z0-9]+)".*/\1/p' | head -n1)
[ -n "$HOST_ID" ] || { echo "no host answered; see $STATE/trellis.log" >&2; exit 1; }

echo "==> deploying http-hello on host $HOST_ID"
$WASH config put hello-http "address=127.0.0.1:$HTTP_PORT"
$WASH start provider builtin://http-server http-server --host-id "$HOST_ID" 2>/dev/null || echo "   (http-server already running)"
$WASH link put http-server http-hello wasi http --interface incoming-handler --source-config hello-http
$WASH start component "file://$ROOT/target/guests/wasm32-wasip2/release/http_hello.wasm" http-hello \
  --max-instances 10 --host-id "$HOST_ID" 2>/dev/null || echo "   (http-hello already running)"

for _ in $(seq 1 50); do curl -fsS "http://127.0.0.1:$HTTP_PORT/" >/dev/null 2>&1 && break; sleep 0.2; done
echo
echo "Trellis is up. Try:"
echo "  curl http://127.0.0.1:$HTTP_PORT/"
echo "  target/release/wash get hosts"
echo "  target/release/wash get inventory $HOST_ID"
echo "Stop it with: bash scripts/demo.sh stop"
