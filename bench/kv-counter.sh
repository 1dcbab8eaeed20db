#!/usr/bin/env bash
# HTTP → kv-counter → keyvalue (issue 4), with `wrk -t2 -c50 -d15s`, deployed with
# wadm from the example manifests, one run, three paths:
#
#   1. http-hello through the built-in HTTP server (baseline: no keyvalue);
#   2. kv-counter with the built-in keyvalue-nats (JetStream KV in the host);
#   3. kv-counter with the keyvalue-nats provider process (one wRPC hop over NATS
#      to the provider, then JetStream KV);
#   4. http-hello through the http-server provider process (the cost of
#      wrpc:http alone: provider -> component over NATS, streams included);
#   5. kv-counter with HTTP through the http-server provider process *and* the
#      keyvalue-nats provider process (examples/apps/kv-counter-http-provider.yaml:
#      wrpc:http provider -> component, then wrpc:keyvalue component -> provider).
#
# Starts its own stack with `wash up -d` (nats-server with JetStream, wadm, one
# host) on a free port in a temporary WASH_HOME; `wash down` on exit.
# Needs release builds: cargo build --release -p trellis-host -p trellis-wadm
#   -p trellis-wash -p keyvalue-nats-provider -p http-server-provider, plus the
#   guest components.
# Every component runs with `instances: $BENCH_INSTANCES` (default 100, what
# the kv-counter manifests say): in wasmCloud 1.x semantics, which Trellis
# keeps, a component's instances are the most invocations it runs at once on
# a host. http-hello's manifest says 10; the bench raises it too so every
# path has the same cap. BENCH_INSTANCES=10 shows what a cap below wrk's 50
# connections does: requests queue for an instance (the providers path
# measured 3,684 req/s that way).
# Knobs: BENCH_DURATION (15s), BENCH_CONNECTIONS (50), BENCH_THREADS (2),
# BENCH_INSTANCES (100), CARGO_TARGET_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DURATION=${BENCH_DURATION:-15s}
CONNECTIONS=${BENCH_CONNECTIONS:-50}
THREADS=${BENCH_THREADS:-2}
INSTANCES=${BENCH_INSTANCES:-100}
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release
for b in trellis wadm wash keyvalue-nats-provider http-server-provider; do
  [ -x "$BIN/$b" ] || { echo "bench: $BIN/$b missing (see the header for the build command)" >&2; exit 1; }
done
command -v wrk >/dev/null || { echo "bench: wrk missing: apt-get install wrk" >&2; exit 1; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/trellis-bench-kv.XXXXXX")
export WASH_HOME=$WORK/wash
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export WASMCLOUD_CTL_PORT=$PORT
WASH="$BIN/wash"
KEEP=0
cleanup() {
  "$WASH" down >/dev/null 2>&1 || true
  if [ "$KEEP" = 1 ]; then echo "bench: logs kept in $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

"$WASH" up -d --nats-port "$PORT" >/dev/null
# Every app listens on a free port (the manifests' fixed 8000-8010 collide
# with anything else on the machine, e.g. a second run of this script).
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
P_HELLO=$(free_port); P_KV=$(free_port); P_KV_PROV=$(free_port); P_HELLO_PROV=$(free_port); P_HTTP_PROV=$(free_port)
sed -e "s/127.0.0.1:8000/127.0.0.1:$P_HELLO/" examples/apps/http-hello.yaml > "$WORK/http-hello.yaml"
sed -e "s/127.0.0.1:8003/127.0.0.1:$P_KV/" examples/apps/kv-counter.yaml > "$WORK/kv-counter.yaml"
# The provider variant: the same app with the keyvalue-nats provider process.
sed -e "s|builtin://keyvalue-nats|file://$BIN/keyvalue-nats-provider|" \
    -e 's/name: kv-counter$/name: kv-counter-prov/' \
    -e 's/kv-counter-bucket/kv-counter-prov-bucket/' \
    -e 's/kv-counter-http/kv-counter-prov-http/' \
    -e "s/127.0.0.1:8003/127.0.0.1:$P_KV_PROV/" \
    examples/apps/kv-counter.yaml > "$WORK/kv-counter-prov.yaml"
# Both capabilities as provider processes, binaries from this build.
sed -e "s|file://./target/release/|file://$BIN/|" \
    -e 's/bucket: counters/bucket: counters-http-prov/' \
    -e "s/127.0.0.1:8008/127.0.0.1:$P_HTTP_PROV/" \
    examples/apps/kv-counter-http-provider.yaml > "$WORK/kv-counter-http-prov.yaml"
sed -e "s|builtin://http-server|file://$BIN/http-server-provider|" \
    -e 's/^  name: http-hello$/  name: http-hello-prov/' \
    -e 's/default-http/hello-prov-http/' \
    -e "s/127.0.0.1:8000/127.0.0.1:$P_HELLO_PROV/" \
    examples/apps/http-hello.yaml > "$WORK/http-hello-prov.yaml"
for app in "$WORK"/*.yaml; do   # the component's instances (its first `instances:`)
  sed -i "0,/instances: [0-9]*/s//instances: $INSTANCES/" "$app"
done
for app in "$WORK/http-hello.yaml" "$WORK/kv-counter.yaml" "$WORK/kv-counter-prov.yaml" "$WORK/http-hello-prov.yaml" "$WORK/kv-counter-http-prov.yaml"; do
  "$WASH" app deploy "$app" >/dev/null
done
for url in "http://127.0.0.1:$P_HELLO/" "http://127.0.0.1:$P_KV/hits" "http://127.0.0.1:$P_KV_PROV/hits" "http://127.0.0.1:$P_HELLO_PROV/" "http://127.0.0.1:$P_HTTP_PROV/hits"; do
  for _ in $(seq 1 150); do curl -fsS "$url" >/dev/null 2>&1 && break; sleep 0.2; done
  curl -fsS "$url" >/dev/null || { echo "bench: $url never answered" >&2; KEEP=1; exit 1; }
done

# Keys spread over 1,000 counters (a Lua request generator), so the figure is not
# one hot key's compare-and-swap retries; `hot` runs hammer the single key /hits.
cat > "$WORK/keys.lua" <<'LUA'
request = function() return wrk.format("GET", "/k" .. math.random(1, 1000)) end
LUA
run() { # name url [script] → "rps p99_ms"
  local out rps p99
  out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency ${3:+-s "$3"} "$2")
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v*=1000}; print v}' <<<"$out")
  echo "$rps $p99"
}
echo "machine: $(nproc) cores; wrk -t$THREADS -c$CONNECTIONS -d$DURATION; component instances $INSTANCES; one host, wadm, nats-server on loopback (release builds)"
read -r hello_rps hello_p99 < <(run hello "http://127.0.0.1:$P_HELLO/")
read -r kv_rps kv_p99 < <(run builtin "http://127.0.0.1:$P_KV/" "$WORK/keys.lua")
read -r prov_rps prov_p99 < <(run provider "http://127.0.0.1:$P_KV_PROV/" "$WORK/keys.lua")
read -r hello_prov_rps hello_prov_p99 < <(run hello-provider "http://127.0.0.1:$P_HELLO_PROV/")
read -r hprov_rps hprov_p99 < <(run http-provider "http://127.0.0.1:$P_HTTP_PROV/" "$WORK/keys.lua")
read -r hot_rps hot_p99 < <(run builtin-hot "http://127.0.0.1:$P_KV/hits")
read -r phot_rps phot_p99 < <(run provider-hot "http://127.0.0.1:$P_KV_PROV/hits")
echo
echo "| path | requests/s | p99 ms | vs http-hello |"
echo "|---|---|---|---|"
printf '| http-hello, built-in http-server (baseline) | %.0f | %s | 1.00× |\n' "$hello_rps" "$hello_p99"
printf '| kv-counter, built-in keyvalue-nats, 1,000 keys | %.0f | %s | %.2f× |\n' "$kv_rps" "$kv_p99" "$(echo "$kv_rps / $hello_rps" | bc -l)"
printf '| kv-counter, keyvalue-nats provider process, 1,000 keys | %.0f | %s | %.2f× |\n' "$prov_rps" "$prov_p99" "$(echo "$prov_rps / $hello_rps" | bc -l)"
printf '| http-hello, http-server provider process | %.0f | %s | %.2f× |\n' "$hello_prov_rps" "$hello_prov_p99" "$(echo "$hello_prov_rps / $hello_rps" | bc -l)"
printf '| kv-counter, http-server provider + keyvalue-nats provider, 1,000 keys | %.0f | %s | %.2f× |\n' "$hprov_rps" "$hprov_p99" "$(echo "$hprov_rps / $hello_rps" | bc -l)"
printf '| kv-counter, built-in keyvalue-nats, one hot key | %.0f | %s | %.2f× |\n' "$hot_rps" "$hot_p99" "$(echo "$hot_rps / $hello_rps" | bc -l)"
printf '| kv-counter, keyvalue-nats provider process, one hot key | %.0f | %s | %.2f× |\n' "$phot_rps" "$phot_p99" "$(echo "$phot_rps / $hello_rps" | bc -l)"
printf '\nprovider path / built-in path: %.2f×\n' "$(echo "$prov_rps / $kv_rps" | bc -l)"
printf '\nproviders (http-server + keyvalue-nats) vs built-ins (http-server + keyvalue-nats), 1,000 keys: %.2f×\n' "$(echo "$hprov_rps / $kv_rps" | bc -l)"
