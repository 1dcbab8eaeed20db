#!/usr/bin/env bash
# Trellis performance benchmarks, one command: `bash bench/run.sh`.
#
# Measures, against baselines taken in the same run (the machine is shared, so
# only ratios are comparable across runs):
#   (a) HTTP throughput and latency of the host's ingress vs. a minimal
#       wasmtime + wasmtime-wasi-http server over the same component
#       (bench/src/baseline_wasi_http.rs), with wrk, alternating the two;
#   (b) cold start: component.scale -> component_scaled, first start on an
#       empty precompiled cache, warm-cache starts, and the first start after a
#       host restart with the same cache;
#   (c) idle RSS of the host with 0 components and with N distinct components.
# Everything listens on 127.0.0.1 only, on free ports; every process started
# here is stopped on exit.
#
# Knobs (environment):
#   BENCH_DURATION=15s        wrk duration of each measured run
#   BENCH_WARMUP=3s           wrk warm-up per server before the measured runs
#   BENCH_ROUNDS=2            measured runs per server (alternating)
#   BENCH_CONNECTIONS=50      wrk connections        BENCH_THREADS=2  wrk threads
#   BENCH_MAX_INSTANCES=100   max_instances of the benchmarked component
#   BENCH_COLD_ITERATIONS=20  cold-start iterations (first = empty cache)
#   BENCH_MANY=50             distinct components for the RSS figure
#   BENCH_SKIP_BUILD=1        use the binaries already built
#   BENCH_KEEP=1              keep the work directory (logs) after the run
# Quick smoke run: BENCH_DURATION=3s BENCH_WARMUP=1s BENCH_COLD_ITERATIONS=5 BENCH_MANY=5 bash bench/run.sh
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
DURATION=${BENCH_DURATION:-15s}
WARMUP=${BENCH_WARMUP:-3s}
ROUNDS=${BENCH_ROUNDS:-2}
CONNECTIONS=${BENCH_CONNECTIONS:-50}
THREADS=${BENCH_THREADS:-2}
MAX_INSTANCES=${BENCH_MAX_INSTANCES:-100}
COLD_ITERATIONS=${BENCH_COLD_ITERATIONS:-20}
MANY=${BENCH_MANY:-50}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$TARGET_DIR/release
GUEST=$ROOT/target/guests/wasm32-wasip2/release/http_hello.wasm
WORK=$(mktemp -d "${TMPDIR:-/tmp}/trellis-bench.XXXXXX")
SUMMARY=$WORK/summary.txt

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'bench: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- processes --
PIDS=()
cleanup() {
  local status=$? i
  # Newest first, so hosts stop while nats-server is still up (a host whose
  # NATS is gone may not finish its shutdown; stop_pid escalates to SIGKILL).
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
    stop_pid "${PIDS[i]}"
  done
  if [ "${BENCH_KEEP:-0}" = 1 ] || [ "$status" -ne 0 ]; then
    printf 'bench: logs kept in %s\n' "$WORK" >&2
  else
    rm -rf "$WORK"
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Stops one process started by this script and forgets it.
stop_pid() {
  local pid=$1 keep=() p
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  for p in "${PIDS[@]}"; do [ "$p" = "$pid" ] || keep+=("$p"); done
  PIDS=("${keep[@]}")
}

# A TCP port on 127.0.0.1 nothing listens on (probed by connecting).
free_port() {
  local port
  for _ in $(seq 200); do
    port=$((20000 + RANDOM % 40000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "$port"
      return 0
    fi
  done
  die "no free port found"
}

# `GET /` on 127.0.0.1:$1; succeeds when the status is 200 and the body is the
# guest's greeting.
http_hello_ok() {
  local reply
  reply=$( (exec 3<>"/dev/tcp/127.0.0.1/$1" &&
    printf 'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' >&3 &&
    timeout 5 cat <&3) 2>/dev/null) || return 1
  [[ $reply == "HTTP/1.1 200"* && $reply == *"Hello from Trellis!"* ]]
}

wait_http() {
  for _ in $(seq 300); do http_hello_ok "$1" && return 0; sleep 0.1; done
  die "nothing answers 200 'Hello from Trellis!' on 127.0.0.1:$1"
}

nats_server_bin() {
  if command -v pyenv >/dev/null 2>&1 && pyenv which nats-server >/dev/null 2>&1; then
    pyenv which nats-server
  else
    command -v nats-server || die "nats-server >= 2.10 not found (scripts/prereqs.sh installs it)"
  fi
}

NATS_PORT=
start_nats() {
  NATS_PORT=$(free_port)
  "$(nats_server_bin)" -js -a 127.0.0.1 -p "$NATS_PORT" -sd "$WORK/nats" >"$WORK/nats.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$NATS_PORT") 2>/dev/null && return 0
    sleep 0.1
  done
  die "nats-server did not start (see $WORK/nats.log)"
}

# start_host <lattice> <cache-dir> <log-name>: sets HOST_PID and HOST_ID.
HOST_PID= HOST_ID=
start_host() {
  local lattice=$1 cache=$2 name=$3
  "$BIN/trellis" --nats-url "nats://127.0.0.1:$NATS_PORT" --lattice "$lattice" \
    --allow-file-load --cache-dir "$cache" --log-level warn >"$WORK/$name.log" 2>&1 &
  HOST_PID=$!
  PIDS+=("$HOST_PID")
  HOST_ID=$("$BIN/lattice-setup" "nats://127.0.0.1:$NATS_PORT" "$lattice" host-id | sed -n 's/^host_id=//p')
  [ -n "$HOST_ID" ] || die "host did not come up (see $WORK/$name.log)"
}

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
rss_detail() { grep -E '^(VmRSS|RssAnon|RssFile|VmHWM):' "/proc/$1/status" | tr -s ' \t' ' ' | paste -sd' '; }
mib() { awk -v k="$1" 'BEGIN {printf "%.1f", k / 1024}'; }

# ------------------------------------------------------------------- build --
if [ "${BENCH_SKIP_BUILD:-0}" != 1 ]; then
  log "building release binaries and the guest component"
  cargo build --release -p trellis-host -p trellis-bench
  cargo build --release --target wasm32-wasip2 --manifest-path examples/components/Cargo.toml --target-dir target/guests
fi
for b in trellis baseline-wasi-http cold-start lattice-setup; do
  [ -x "$BIN/$b" ] || die "$BIN/$b missing: build with cargo build --release -p trellis-host -p trellis-bench"
done
[ -f "$GUEST" ] || die "$GUEST missing"
command -v wrk >/dev/null || die "wrk missing (apt-get install -y wrk)"

start_nats
log "nats-server on 127.0.0.1:$NATS_PORT, work dir $WORK"

# ------------------------------------------------------- (a) HTTP throughput --
# wrk_run <port> <duration> <label>: prints "rps p50_ms p99_ms non2xx socket_errors".
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

log "(a) HTTP: starting baseline and trellis over $(basename "$GUEST")"
BASE_PORT=$(free_port)
"$BIN/baseline-wasi-http" "$GUEST" "127.0.0.1:$BASE_PORT" >"$WORK/baseline.log" 2>&1 &
BASE_PID=$!
PIDS+=("$BASE_PID")
wait_http "$BASE_PORT"

start_host bench-http "$WORK/cache-http" host-http
HTTP_HOST_PID=$HOST_PID
TRELLIS_PORT=$(free_port)
"$BIN/lattice-setup" "nats://127.0.0.1:$NATS_PORT" bench-http serve "$GUEST" "127.0.0.1:$TRELLIS_PORT" "$MAX_INSTANCES" >/dev/null
wait_http "$TRELLIS_PORT"

log "(a) warm-up: $WARMUP each"
wrk_run "$BASE_PORT" "$WARMUP" warmup-baseline >/dev/null
wrk_run "$TRELLIS_PORT" "$WARMUP" warmup-trellis >/dev/null

declare -a B_RPS=() B_P50=() B_P99=() T_RPS=() T_P50=() T_P99=()
for round in $(seq "$ROUNDS"); do
  for target in baseline trellis; do
    if [ "$target" = baseline ]; then port=$BASE_PORT; else port=$TRELLIS_PORT; fi
    log "(a) round $round/$ROUNDS: $target, wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency"
    result=$(wrk_run "$port" "$DURATION" "$target-$round")
    read -r rps p50 p99 non2xx errors <<<"$result"
    printf '    %-8s round %d: %8s req/s  p50 %7s ms  p99 %7s ms  non-2xx %s  socket errors %s\n' \
      "$target" "$round" "$rps" "$p50" "$p99" "$non2xx" "$errors" >&2
    [ "$non2xx" = 0 ] && [ "$errors" = 0 ] || die "$target answered errors during the run (see $WORK/wrk-$target-$round.txt)"
    if [ "$target" = baseline ]; then B_RPS+=("$rps"); B_P50+=("$p50"); B_P99+=("$p99")
    else T_RPS+=("$rps"); T_P50+=("$p50"); T_P99+=("$p99"); fi
  done
done
mean() { printf '%s\n' "$@" | awk '{s += $1} END {printf "%.3f", s / NR}'; }
B_RPS_M=$(mean "${B_RPS[@]}"); B_P50_M=$(mean "${B_P50[@]}"); B_P99_M=$(mean "${B_P99[@]}")
T_RPS_M=$(mean "${T_RPS[@]}"); T_P50_M=$(mean "${T_P50[@]}"); T_P99_M=$(mean "${T_P99[@]}")
RATIO=$(awk -v t="$T_RPS_M" -v b="$B_RPS_M" 'BEGIN {printf "%.2f", t / b}')
HTTP_RSS=$(rss_kib "$HTTP_HOST_PID")
stop_pid "$HTTP_HOST_PID"
stop_pid "$BASE_PID"

# ---------------------------------------------------------- (b) cold start --
# cold_run <host-id> <iterations> <label>: the cold-start bin's output, kept.
cold_run() {
  "$BIN/cold-start" "nats://127.0.0.1:$NATS_PORT" bench-cold "$1" "file://$GUEST" "$2" | tee "$WORK/cold-$3.txt" >&2
}
log "(b) cold start: empty cache, $COLD_ITERATIONS iterations"
COLD_CACHE=$WORK/cache-cold
start_host bench-cold "$COLD_CACHE" host-cold-1
cold_run "$HOST_ID" "$COLD_ITERATIONS" empty
stop_pid "$HOST_PID"
log "(b) cold start: host restarted with the same cache"
start_host bench-cold "$COLD_CACHE" host-cold-2
cold_run "$HOST_ID" 1 restart
stop_pid "$HOST_PID"
COLD_FIRST=$(sed -n 's/^first start: \([0-9.]*\) ms/\1/p' "$WORK/cold-empty.txt")
read -r COLD_MIN COLD_MED COLD_MAX < <(sed -n 's/^warm cache.*min \([0-9.]*\) ms, median \([0-9.]*\) ms, max \([0-9.]*\) ms/\1 \2 \3/p' "$WORK/cold-empty.txt")
COLD_RESTART=$(sed -n 's/^first start: \([0-9.]*\) ms/\1/p' "$WORK/cold-restart.txt")

# ------------------------------------------------------------ (c) idle RSS --
settle() { sleep 2; } # the brief's fixed settle time before reading RSS
log "(c) RSS: host with 0 components"
RSS_CACHE=$WORK/cache-rss
start_host bench-rss "$RSS_CACHE" host-rss-1
settle
RSS0=$(rss_kib "$HOST_PID"); log "    0 components: $(rss_detail "$HOST_PID")"
log "(c) RSS: $MANY distinct components (each compiled by this host)"
"$BIN/lattice-setup" "nats://127.0.0.1:$NATS_PORT" bench-rss many "$GUEST" "$MANY" "$WORK/variants" >/dev/null
settle
RSS_MANY=$(rss_kib "$HOST_PID"); log "    $MANY components: $(rss_detail "$HOST_PID")"
stop_pid "$HOST_PID"
log "(c) RSS: host restarted, $MANY components loaded from the precompiled cache"
start_host bench-rss "$RSS_CACHE" host-rss-2
settle
RSS0_B=$(rss_kib "$HOST_PID"); log "    0 components: $(rss_detail "$HOST_PID")"
"$BIN/lattice-setup" "nats://127.0.0.1:$NATS_PORT" bench-rss many "$GUEST" "$MANY" "$WORK/variants" >/dev/null
settle
RSS_MANY_CACHED=$(rss_kib "$HOST_PID"); log "    $MANY components: $(rss_detail "$HOST_PID")"
stop_pid "$HOST_PID"

# ------------------------------------------------------------------ summary --
verdict() { if awk -v a="$1" -v b="$2" "BEGIN {exit !(a $3 b)}"; then echo met; else echo MISSED; fi; }
{
  echo
  echo "Trellis benchmarks  $(date -u +%Y-%m-%dT%H:%M:%SZ)  $(nproc) cores, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)"
  echo "trellis at $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$ROOT" diff --quiet HEAD -- host interfaces 2>/dev/null || echo ' + uncommitted host/interfaces changes')"
  echo "wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency, $ROUNDS alternating rounds each (mean shown); max_instances $MAX_INSTANCES"
  echo
  printf '%-44s %12s %12s %12s\n' "HTTP GET / (http-hello)" "req/s" "p50 ms" "p99 ms"
  printf '%-44s %12.0f %12.3f %12.3f\n' "baseline (wasmtime-wasi-http)" "$B_RPS_M" "$B_P50_M" "$B_P99_M"
  printf '%-44s %12.0f %12.3f %12.3f\n' "trellis ingress" "$T_RPS_M" "$T_P50_M" "$T_P99_M"
  printf '%-44s %12s   bar >= 0.80: %s\n' "ratio trellis / baseline (req/s)" "${RATIO}x" "$(verdict "$RATIO" 0.8 '>=')"
  printf '    per round  baseline: %s   trellis: %s\n' "${B_RPS[*]}" "${T_RPS[*]}"
  echo
  printf '%-44s %12s\n' "cold start (scale -> component_scaled)" "ms"
  printf '%-44s %12s\n' "first start, empty cache (compiles)" "$COLD_FIRST"
  printf '%-44s %12s   bar < 20: %s\n' "warm cache, median of $((COLD_ITERATIONS - 1))" "$COLD_MED" "$(verdict "$COLD_MED" 20 '<')"
  printf '%-44s %12s\n' "warm cache, min / max" "$COLD_MIN / $COLD_MAX"
  printf '%-44s %12s\n' "first start after host restart (same cache)" "$COLD_RESTART"
  echo
  printf '%-44s %12s\n' "idle RSS of the host" "MiB"
  printf '%-44s %12s\n' "0 components" "$(mib "$RSS0")"
  printf '%-44s %12s\n' "$MANY distinct components (compiled here)" "$(mib "$RSS_MANY")"
  printf '%-44s %12s\n' "0 components (restarted)" "$(mib "$RSS0_B")"
  printf '%-44s %12s\n' "$MANY distinct components (from cache)" "$(mib "$RSS_MANY_CACHED")"
  printf '%-44s %12s\n' "after the HTTP runs (1 component)" "$(mib "$HTTP_RSS")"
} | tee "$SUMMARY"
