#!/usr/bin/env bash
# Runs workload (j), TLS echo, on programs already built (run.sh builds them and calls
# this): makes a self-signed certificate with the openssl command, then for each round,
# for each server: start it on a free port, wait until it accepts, run tls_loadgen on
# every cell (conns 10, 100 x size 1024, 16384; TLS 1.3, TLS_AES_128_GCM_SHA256 on both
# sides), stop it. Then, for each round, per server, the memory of idle TLS connections
# (tls_idle_rss on a fresh server). Prints medians over the rounds: each server's
# requests/s and CPU time per request against asio's in the same cell, the client's CPU
# time per request beside the server's, and the idle bytes per connection, with the ioloop
# servers' target.
#   bash tools/bench/tls_echo/run_tls_echo.sh [--build DIR] [--runs R] [--seconds T] [--quick]
# --quick: one round, 200 requests per cell and 200 idle connections (CI's smoke test).
# Exits non-zero if a program fails or misbehaves (a server that does not start or does
# not exit cleanly on SIGTERM included); a target not met is reported, not a failure.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
build=${BUILD_DIR:-$here/../build}
runs=3 seconds=2 quick=0
while (($#)); do
    case $1 in
        --build) build=${2:?--build needs a directory}; shift ;;
        --runs) runs=${2:?--runs needs a number}; shift ;;
        --seconds) seconds=${2:?--seconds needs a number}; shift ;;
        --quick) quick=1 ;;
        -h|--help) sed -n '2,13s/^# \{0,1\}//p' "$0"; exit 0 ;;
        *) echo "run_tls_echo.sh: unknown argument: $1" >&2; exit 2 ;;
    esac
    shift
done
[[ $runs =~ ^[1-9][0-9]*$ ]] || { echo "run_tls_echo.sh: --runs must be a positive integer" >&2; exit 2; }
[[ $seconds =~ ^[0-9]+(\.[0-9]+)?$ ]] || { echo "run_tls_echo.sh: --seconds must be a number" >&2; exit 2; }

conns_list=(10 100) sizes=(1024 16384)
load_mode=(--seconds "$seconds") idle_conns=10000 n_requests=
if ((quick)); then
    runs=1 n_requests=200 idle_conns=200
    load_mode=(--requests "$n_requests")
fi
# asio first: every other server is compared with it. raw is plain C over OpenSSL, the
# floor (and the proof that the client can drive more than the servers it measures).
servers=(asio raw ioloop ioloop_coro asyncio)
base=asio
declare -A rps_target=([ioloop]=1.00 [ioloop_coro]=1.00)

failed=0
fail() { echo "FAIL: $*" >&2; failed=1; }

for tool in tls_loadgen tls_idle_rss; do
    [[ -x $build/$tool ]] || { echo "FAIL: $build/$tool not built (run tools/bench/run.sh)" >&2; exit 1; }
done
command -v openssl >/dev/null || { echo "FAIL: the openssl command is needed for the certificate" >&2; exit 1; }
# The ioloop servers are built once <ioloop/ssl.hpp> exists; every other one must be there.
present=()
for s in "${servers[@]}"; do
    if [[ $s == asyncio ]]; then
        if command -v python3 >/dev/null; then present+=("$s"); else fail "python3 not found (for tls_echo_asyncio.py)"; fi
    elif [[ -x $build/tls_echo_$s ]]; then present+=("$s")
    elif [[ $s == ioloop* ]]; then echo "note: tls_echo_$s not built (no include/ioloop/ssl.hpp?): skipped"
    else fail "tls_echo_$s: not built"
    fi
done
((failed)) && exit 1

# The server running now, and the certificate's directory, go however this script ends.
server_pid= server_port=
pki=$(mktemp -d "${TMPDIR:-/tmp}/ioloop-tls-bench.XXXXXX") || exit 1
cleanup() {
    if [[ -n $server_pid ]]; then kill -KILL "$server_pid" 2>/dev/null; wait "$server_pid" 2>/dev/null; fi
    server_pid=
}
trap 'cleanup; rm -rf "$pki"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# A self-signed P-256 certificate for localhost and 127.0.0.1, made now (no key material
# is committed): the servers serve it, the clients verify against it.
cert=$pki/cert.pem key=$pki/key.pem
if ! openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
        -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
        -keyout "$key" -out "$cert" 2>"$pki/openssl.log"; then
    cat "$pki/openssl.log" >&2
    echo "FAIL: openssl req could not make the certificate" >&2
    exit 1
fi
# Python's ssl module cannot choose TLS 1.3 suites; OpenSSL's configuration can, for every
# context the process makes (the clients force the suite and check it either way).
cat >"$pki/openssl.cnf" <<'CNF'
openssl_conf = bench_conf
[bench_conf]
ssl_conf = bench_ssl
[bench_ssl]
system_default = bench_tls
[bench_tls]
Ciphersuites = TLS_AES_128_GCM_SHA256
CNF

results=$build/tls_echo_results.txt
: >"$results"

# accepts <port>: true if something accepts TCP connections on 127.0.0.1:<port>.
accepts() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# launch <name> <port>: starts the server in the background (its PID in $!).
launch() {
    if [[ $1 == asyncio ]]; then
        OPENSSL_CONF=$pki/openssl.cnf python3 "$here/tls_echo_asyncio.py" "$2" "$cert" "$key" &
    else
        "$build/tls_echo_$1" "$2" "$cert" "$key" &
    fi
}

# start_server <name>: starts it on a free port and waits (up to 5 s) until it accepts.
# Ports are drawn at random below the ephemeral range; a server that exits at once (the
# port was taken in the meantime) is retried on another port, up to 5 times.
start_server() {
    local name=$1 attempt port i
    for ((attempt = 1; attempt <= 5; attempt++)); do
        port=$((20000 + RANDOM % 12000))
        accepts "$port" && continue
        launch "$name" "$port"
        server_pid=$! server_port=$port
        for ((i = 0; i < 250; i++)); do
            if ! kill -0 "$server_pid" 2>/dev/null; then
                wait "$server_pid"
                echo "tls_echo_$name exited with status $? before accepting on port $port; trying another" >&2
                server_pid=
                break
            fi
            if accepts "$port"; then return 0; fi
            sleep 0.02
        done
        if [[ -n $server_pid ]]; then
            fail "tls_echo_$name did not accept on port $port within 5 s"
            cleanup
            return 1
        fi
    done
    fail "tls_echo_$name: could not start it on a free port"
    return 1
}

# stop_server <name>: SIGTERM, then the server must exit with status 0 within 5 s.
stop_server() {
    local name=$1 i status
    [[ -n $server_pid ]] || return
    kill -TERM "$server_pid" 2>/dev/null
    for ((i = 0; i < 250; i++)); do
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.02
    done
    if kill -0 "$server_pid" 2>/dev/null; then
        fail "tls_echo_$name did not exit within 5 s of SIGTERM"
        cleanup
        return
    fi
    wait "$server_pid"
    status=$?
    server_pid=
    ((status == 0)) || fail "tls_echo_$name exited with status $status on SIGTERM"
}

# run_cell <name> <conns> <size>: one tls_loadgen run; appends
# "tls <name> <conns> <size> <rps> <p50_us> <p99_us> <client us/req> <server us/req>".
run_cell() {
    local name=$1 c=$2 s=$3 out f
    if ! out=$("$build/tls_loadgen" 127.0.0.1 "$server_port" --ca "$cert" --conns "$c" --size "$s" \
            "${load_mode[@]}" --server-pid "$server_pid" --label "$name"); then
        fail "tls_loadgen against tls_echo_$name, conns $c size $s"
        return 1
    fi
    read -r -a f <<<"$out"
    if [[ ${#f[@]} -ne 24 || ${f[0]} != tls_echo || ${f[1]} != "$name" || ${f[3]} != "$c" ||
          ${f[5]} != "$s" || ${f[10]} != rps || ${f[18]} != client_cpu_us_per_req ||
          ${f[22]} != server_cpu_us_per_req ]]; then
        fail "tls_loadgen: unexpected output: $out"
        return 1
    fi
    if [[ -n $n_requests && ${f[7]} != "$n_requests" ]]; then
        fail "tls_loadgen against tls_echo_$name: ${f[7]} round trips, expected $n_requests"
        return 1
    fi
    echo "  $out"
    echo "tls $name $c $s ${f[11]} ${f[13]} ${f[15]} ${f[19]} ${f[23]}" >>"$results"
}

# run_idle <name>: tls_idle_rss against a fresh server; appends
# "idle <name> <bytes/conn> <rss before KiB> <rss after KiB>".
run_idle() {
    local name=$1 out f
    start_server "$name" || return
    if out=$("$build/tls_idle_rss" "$server_pid" 127.0.0.1 "$server_port" --ca "$cert" \
            --conns "$idle_conns" --label "$name"); then
        read -r -a f <<<"$out"
        if [[ ${#f[@]} -ne 10 || ${f[0]} != tls_idle || ${f[3]} != "$idle_conns" || ${f[8]} != bytes_per_conn ]]; then
            fail "tls_idle_rss: unexpected output: $out"
        else
            echo "  $out"
            echo "idle $name ${f[9]} ${f[5]} ${f[7]}" >>"$results"
        fi
    else
        fail "tls_idle_rss against tls_echo_$name"
    fi
    stop_server "$name"
}

# The order of the servers rotates from round to round, so that none always runs first.
# The idle measurements, whose 10,000 handshakes leave the kernel busy for a while, all
# come after the ping-pong rounds.
n_present=${#present[@]}
for ((r = 0; r < runs; r++)); do
    echo "TLS echo round $((r + 1))/$runs"
    for ((k = 0; k < n_present; k++)); do
        name=${present[(k + r) % n_present]}
        start_server "$name" || continue
        for c in "${conns_list[@]}"; do
            for s in "${sizes[@]}"; do run_cell "$name" "$c" "$s" || break 2; done
        done
        stop_server "$name"
    done
done
for ((r = 0; r < runs; r++)); do
    echo "TLS idle round $((r + 1))/$runs"
    for ((k = 0; k < n_present; k++)); do run_idle "${present[(k + r) % n_present]}"; done
done

# median <awk condition> <field>: median of that field over the matching lines.
median() {
    awk "$1 { print \$$2 }" "$results" | sort -g |
        awk '{ v[NR] = $1 } END { if (NR) { m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; print m } }'
}
fmt() { awk -v v="$1" -v d="$2" 'BEGIN { if (v == "") print "n/a"; else printf "%.*f\n", d, v }'; }
# ratio <a> <b>: a / b with two decimals, empty if either is missing.
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a > 0 && b > 0) printf "%.2f", a / b }'; }

echo
if ((quick)); then
    echo "TLS echo ping-pong, --quick: $n_requests round trips per cell, one run (smoke test: figures not meaningful)"
else
    echo "TLS echo ping-pong: medians of $runs runs, ${seconds} s per cell after a 0.2 s warm-up"
fi
echo "  ratio: requests/s / asio's; srv_us/req: the server's CPU time per round trip (kernel included),"
echo "  cpu_ratio: asio's / this one's (above 1: cheaper than asio); cli_us/req: the client's. The side"
echo "  that costs more per round trip bounds requests/s: where the client does, compare srv_us/req"
printf '%5s %6s  %-12s %10s %9s %9s %7s %10s %9s %10s %7s  %s\n' conns size server "requests/s" \
    p50_us p99_us ratio srv_us/req cpu_ratio cli_us/req target result
for c in "${conns_list[@]}"; do
    for s in "${sizes[@]}"; do
        base_cond="\$1 == \"tls\" && \$2 == \"$base\" && \$3 == $c && \$4 == $s"
        base_rps=$(median "$base_cond" 5) base_cpu=$(median "$base_cond" 9)
        for name in "${present[@]}"; do
            cond="\$1 == \"tls\" && \$2 == \"$name\" && \$3 == $c && \$4 == $s"
            rps=$(median "$cond" 5) p50=$(median "$cond" 6) p99=$(median "$cond" 7)
            client=$(median "$cond" 8) cpu=$(median "$cond" 9)
            r="" cr="" target="" result=""
            if [[ $name != "$base" ]]; then r=$(ratio "$rps" "$base_rps") cr=$(ratio "$base_cpu" "$cpu"); fi
            if [[ -n ${rps_target[$name]:-} ]]; then
                target=">=${rps_target[$name]}x"
                result=$(awk -v r="$r" -v t="${rps_target[$name]}" 'BEGIN { print (r == "" ? "n/a" : r >= t ? "met" : "NOT met") }')
            fi
            printf '%5s %6s  %-12s %10s %9s %9s %7s %10s %9s %10s %7s  %s\n' "$c" "$s" "$name" \
                "$(fmt "$rps" 0)" "$(fmt "$p50" 1)" "$(fmt "$p99" 1)" "${r:+${r}x}" "$(fmt "$cpu" 2)" \
                "${cr:+${cr}x}" "$(fmt "$client" 2)" "$target" "$result"
        done
    done
done

echo
echo "idle TLS connections: $idle_conns per server after the handshake and one echo, user-space bytes"
echo "per connection = VmRSS growth / connections (median of $runs); ratio: this one's / asio's"
printf '%-12s %15s %14s %11s %7s\n' server rss_before_kib rss_after_kib bytes/conn ratio
base_bytes=$(median "\$1 == \"idle\" && \$2 == \"$base\"" 3)
for name in "${present[@]}"; do
    cond="\$1 == \"idle\" && \$2 == \"$name\""
    bytes=$(median "$cond" 3) before=$(median "$cond" 4) after=$(median "$cond" 5)
    r=""
    [[ $name != "$base" ]] && r=$(ratio "$bytes" "$base_bytes")
    printf '%-12s %15s %14s %11s %7s\n' "$name" "$(fmt "$before" 0)" "$(fmt "$after" 0)" "$(fmt "$bytes" 0)" "${r:+${r}x}"
done

if ((failed)); then echo "run_tls_echo.sh: FAILED (see above)" >&2; exit 1; fi
echo "run_tls_echo.sh: every TLS echo server ran, echoed every byte back and exited cleanly"
