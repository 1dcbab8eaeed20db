#!/usr/bin/env bash
# CPU per request of each process on the providers path of issue 4
# (examples/apps/kv-counter-http-provider.yaml: http-server provider ->
# kv-counter -> keyvalue-nats provider), from utime+stime in /proc/PID/stat
# over one wrk run. Stable under load, unlike requests/s.
#
# BENCH_PATH picks the path (default `providers`):
#   providers       http-server provider -> kv-counter -> keyvalue-nats provider
#   kv-provider     built-in http-server -> kv-counter -> keyvalue-nats provider
#   hello-provider  http-server provider -> http-hello (no keyvalue)
#   builtins        built-in http-server -> kv-counter -> built-in keyvalue-nats
# so the cost of each hop can be told apart (processes a path does not start
# are not listed).
#
# Needs release builds of trellis, wadm, wash, keyvalue-nats-provider and
# http-server-provider in $CARGO_TARGET_DIR/release (default target/release)
# and the guest components. Knobs: BENCH_DURATION (10s), CARGO_TARGET_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${CARGO_TARGET_DIR:-$PWD/target}/release
for b in trellis wadm wash keyvalue-nats-provider http-server-provider; do
  [ -x "$BIN/$b" ] || { echo "bench: $BIN/$b missing" >&2; exit 1; }
done
WORK=$(mktemp -d "${TMPDIR:-/tmp}/trellis-bench-cpu.XXXXXX")
export WASH_HOME=$WORK/wash
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export WASMCLOUD_CTL_PORT=$PORT
WASH="$BIN/wash"
trap '"$WASH" down >/dev/null 2>&1 || true; rm -rf "$WORK"' EXIT
"$WASH" up -d --nats-port "$PORT" >/dev/null
HTTP_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
case "${BENCH_PATH:-providers}" in
  providers) sed -e "s|file://./target/release/|file://$BIN/|" -e "s/127.0.0.1:8008/127.0.0.1:$HTTP_PORT/" \
      examples/apps/kv-counter-http-provider.yaml > "$WORK/app.yaml" ;;
  kv-provider) sed -e "s|builtin://keyvalue-nats|file://$BIN/keyvalue-nats-provider|" \
      -e "s/127.0.0.1:8003/127.0.0.1:$HTTP_PORT/" examples/apps/kv-counter.yaml > "$WORK/app.yaml" ;;
  hello-provider) sed -e "s|builtin://http-server|file://$BIN/http-server-provider|" \
      -e "s/127.0.0.1:8000/127.0.0.1:$HTTP_PORT/" examples/apps/http-hello.yaml > "$WORK/app.yaml" ;;
  builtins) sed -e "s/127.0.0.1:8003/127.0.0.1:$HTTP_PORT/" examples/apps/kv-counter.yaml > "$WORK/app.yaml" ;;
  *) echo "bench: BENCH_PATH must be providers, kv-provider, hello-provider or builtins" >&2; exit 1 ;;
esac
# BENCH_INSTANCES (default 100, as bench/kv-counter.sh and the kv-counter
# manifests): the component's instances, its most concurrent invocations on
# the host (http-hello's manifest says 10).
sed -i "0,/instances: [0-9]*/s//instances: ${BENCH_INSTANCES:-100}/" "$WORK/app.yaml"
"$WASH" app deploy "$WORK/app.yaml" >/dev/null
URL=http://127.0.0.1:$HTTP_PORT
for _ in $(seq 1 150); do curl -fsS "$URL/hits" >/dev/null 2>&1 && break; sleep 0.2; done
cat > "$WORK/keys.lua" <<'LUA'
request = function() return wrk.format("GET", "/k" .. math.random(1, 1000)) end
LUA
wrk -t2 -c50 -d3s -s "$WORK/keys.lua" "$URL/" >/dev/null   # warm-up
HOST=$(cat "$WASH_HOME/host.pid"); NATS=$(cat "$WASH_HOME/nats.pid")
KV=$(pgrep -P "$HOST" -f keyvalue-nats-provider || true); HTTP=$(pgrep -P "$HOST" -f http-server-provider || true)
ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
declare -A before
for p in "$HOST" "$NATS" $KV $HTTP; do before[$p]=$(ticks "$p"); done
OUT=$(wrk -t2 -c50 -d"${BENCH_DURATION:-10s}" -s "$WORK/keys.lua" "$URL/")
N=$(awk '/requests in/ {print $1}' <<<"$OUT")
echo "machine: $(nproc) cores, instances ${BENCH_INSTANCES:-100}, load $(cut -d' ' -f1-3 /proc/loadavg); $(awk '/Requests\/sec/ {print $2}' <<<"$OUT") req/s"
TICK_US=$((1000000 / $(getconf CLK_TCK)))
for entry in "host:$HOST" "nats-server:$NATS" "keyvalue-nats-provider:$KV" "http-server-provider:$HTTP"; do
  p=${entry##*:}
  [ -n "$p" ] || continue
  echo "${entry%%:*}: $(( ($(ticks "$p") - before[$p]) * TICK_US / N )) µs CPU per request"
done
