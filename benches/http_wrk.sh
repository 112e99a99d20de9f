#!/usr/bin/env bash
# http_hello (exec-io) against http_hello_tokio under wrk, in one run.
#
#   benches/http_wrk.sh            # 10 s per run, 256 and 1000 connections
#   DURATION=30s CONNS="256 1000 4000" THREADS=2 benches/http_wrk.sh
#
# Builds both examples in release, starts each server alone (one thread
# per core each: http_hello runs one IoContext per core, each with its own
# SO_REUSEPORT listener on the port; http_hello_tokio a multi-thread
# runtime with one worker per core), runs wrk against it
# for DURATION at each connection count, and prints requests/s and the
# ratio exec/tokio. Installs wrk (Debian package `wrk`) if it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
CONNS=${CONNS:-"256 1000"}
THREADS=${THREADS:-2}
PORT_EXEC=${PORT_EXEC:-18080}
PORT_TOKIO=${PORT_TOKIO:-18081}

if ! command -v wrk >/dev/null 2>&1; then
    echo "installing wrk..." >&2
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get install -y wrk >/dev/null 2>&1 \
        || { $SUDO apt-get update >/dev/null && $SUDO apt-get install -y wrk >/dev/null; }
fi

# Enough descriptors for the largest connection count (server and wrk).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

cargo build --release --features io --example http_hello --example http_hello_tokio >&2

server_pid=""
cleanup() { [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true; }
trap cleanup EXIT

# rps NAME PORT CONNS: requests/s of one wrk run against a running server.
rps() {
    local out
    out=$(wrk -t"$THREADS" -c"$3" -d"$DURATION" "http://127.0.0.1:$2/")
    # Errors would make the numbers meaningless: show them.
    grep -E "Socket errors|Non-2xx" <<<"$out" | sed "s/^/$1 c=$3: /" >&2 || true
    awk '/^Requests\/sec:/ { print $2 }' <<<"$out"
}

# start BIN PORT: starts a server and waits until it accepts connections.
start() {
    "./target/release/examples/$1" "127.0.0.1:$2" >/dev/null &
    server_pid=$!
    for _ in $(seq 1 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$2") 2>/dev/null; then return 0; fi
        sleep 0.05
    done
    echo "$1 did not start" >&2
    exit 1
}

stop() { kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=""; }

declare -A exec_rps tokio_rps
start http_hello "$PORT_EXEC"
for c in $CONNS; do exec_rps[$c]=$(rps exec "$PORT_EXEC" "$c"); done
stop
start http_hello_tokio "$PORT_TOKIO"
for c in $CONNS; do tokio_rps[$c]=$(rps tokio "$PORT_TOKIO" "$c"); done
stop

echo "http_hello under wrk -t$THREADS -d$DURATION, servers on $(nproc) threads (one per core)"
printf "%7s | %12s | %12s | %6s\n" conns "exec req/s" "tokio req/s" ratio
for c in $CONNS; do
    printf "%7s | %12s | %12s | %5sx\n" "$c" "${exec_rps[$c]}" "${tokio_rps[$c]}" \
        "$(awk -v a="${exec_rps[$c]}" -v b="${tokio_rps[$c]}" 'BEGIN { printf "%.2f", a / b }')"
done
