#!/usr/bin/env bash
# Runs workload (e), echo, on programs already built (run.sh builds them and calls this):
# for each round, for each server: start it on a free port, wait until it accepts, run
# loadgen on every cell (conns 10, 100 x size 64, 1024, 16384), stop it. Then, for each
# round, per server, the memory of idle connections (idle_rss on a fresh server). Prints medians
# over the rounds, each server's requests/s against the raw epoll server's in the same
# cell, and the idle bytes per connection, with the targets of the two ioloop servers.
#   bash tools/bench/echo/run_echo.sh [--build DIR] [--runs R] [--seconds T] [--quick]
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
        -h|--help) sed -n '2,10s/^# \{0,1\}//p' "$0"; exit 0 ;;
        *) echo "run_echo.sh: unknown argument: $1" >&2; exit 2 ;;
    esac
    shift
done
[[ $runs =~ ^[1-9][0-9]*$ ]] || { echo "run_echo.sh: --runs must be a positive integer" >&2; exit 2; }
[[ $seconds =~ ^[0-9]+(\.[0-9]+)?$ ]] || { echo "run_echo.sh: --seconds must be a number" >&2; exit 2; }

conns_list=(10 100) sizes=(64 1024 16384)
load_mode=(--seconds "$seconds") idle_conns=10000 n_requests=
if ((quick)); then
    runs=1 n_requests=200 idle_conns=200
    load_mode=(--requests "$n_requests")
fi
# raw_epoll first: every other server is compared with it.
servers=(raw_epoll ioloop ioloop_coro libuv libev asio asio_coro)
# Targets (the two ioloop servers only): requests/s ratio against raw epoll in every
# cell, and user-space bytes per idle connection.
declare -A rps_target=([ioloop]=0.95 [ioloop_coro]=0.95)
declare -A idle_target=([ioloop]=200 [ioloop_coro]=512)

failed=0
fail() { echo "FAIL: $*" >&2; failed=1; }

for tool in loadgen idle_rss; do
    [[ -x $build/$tool ]] || { echo "FAIL: $build/$tool not built (run tools/bench/run.sh)" >&2; exit 1; }
done
# The ioloop servers are optional (their sources may not exist yet); every other one is not.
present=()
for s in "${servers[@]}"; do
    if [[ -x $build/echo_$s ]]; then present+=("$s")
    elif [[ $s == ioloop* ]]; then echo "note: echo_$s not built (echo/echo_$s.cpp missing?): skipped"
    else fail "echo_$s: not built"
    fi
done
((failed)) && exit 1

results=$build/echo_results.txt
: >"$results"

# The server running now, so that it is stopped however this script ends.
server_pid= server_port=
cleanup() {
    if [[ -n $server_pid ]]; then kill -KILL "$server_pid" 2>/dev/null; wait "$server_pid" 2>/dev/null; fi
    server_pid=
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# accepts <port>: true if something accepts TCP connections on 127.0.0.1:<port>.
accepts() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# start_server <name>: starts echo_<name> on a free port and waits (up to 5 s) until it
# accepts. Ports are drawn at random below the ephemeral range; a port something already
# answers on is skipped, and a server that exits at once (say, the port was taken in the
# meantime) is retried on another port, up to 5 times.
start_server() {
    local name=$1 attempt port i
    for ((attempt = 1; attempt <= 5; attempt++)); do
        port=$((20000 + RANDOM % 12000))
        accepts "$port" && continue
        "$build/echo_$name" "$port" &
        server_pid=$! server_port=$port
        for ((i = 0; i < 250; i++)); do
            if ! kill -0 "$server_pid" 2>/dev/null; then
                wait "$server_pid"
                echo "echo_$name exited with status $? before accepting on port $port; trying another" >&2
                server_pid=
                break
            fi
            if accepts "$port"; then return 0; fi
            sleep 0.02
        done
        if [[ -n $server_pid ]]; then
            fail "echo_$name did not accept on port $port within 5 s"
            cleanup
            return 1
        fi
    done
    fail "echo_$name: could not start it on a free port"
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
        fail "echo_$name did not exit within 5 s of SIGTERM"
        cleanup
        return
    fi
    wait "$server_pid"
    status=$?
    server_pid=
    ((status == 0)) || fail "echo_$name exited with status $status on SIGTERM"
}

# run_cell <name> <conns> <size>: one loadgen run; appends
# "echo <name> <conns> <size> <rps> <p50_us> <p99_us>" to $results.
run_cell() {
    local name=$1 c=$2 s=$3 out
    if ! out=$("$build/loadgen" 127.0.0.1 "$server_port" --conns "$c" --size "$s" "${load_mode[@]}" --label "$name"); then
        fail "loadgen against echo_$name, conns $c size $s"
        return 1
    fi
    local f
    read -r -a f <<<"$out"
    if [[ ${#f[@]} -ne 16 || ${f[0]} != echo || ${f[1]} != "$name" || ${f[3]} != "$c" || ${f[5]} != "$s" ||
          ${f[10]} != rps || ${f[12]} != p50_us || ${f[14]} != p99_us ]]; then
        fail "loadgen: unexpected output: $out"
        return 1
    fi
    if [[ -n $n_requests && ${f[7]} != "$n_requests" ]]; then
        fail "loadgen against echo_$name: ${f[7]} round trips, expected $n_requests"
        return 1
    fi
    echo "  $out"
    echo "echo $name $c $s ${f[11]} ${f[13]} ${f[15]}" >>"$results"
}

# run_idle <name>: idle_rss against a fresh server; appends
# "idle <name> <bytes/conn> <rss before KiB> <rss after KiB>" to $results.
run_idle() {
    local name=$1 out f
    start_server "$name" || return
    if out=$("$build/idle_rss" "$server_pid" 127.0.0.1 "$server_port" --conns "$idle_conns" --label "$name"); then
        read -r -a f <<<"$out"
        if [[ ${#f[@]} -ne 10 || ${f[0]} != idle || ${f[3]} != "$idle_conns" || ${f[8]} != bytes_per_conn ]]; then
            fail "idle_rss: unexpected output: $out"
        else
            echo "  $out"
            echo "idle $name ${f[9]} ${f[5]} ${f[7]}" >>"$results"
        fi
    else
        fail "idle_rss against echo_$name"
    fi
    stop_server "$name"
}

# The order of the servers rotates from round to round, so that none always runs first
# (right after the build, or after the previous server's teardown). The idle
# measurements, whose 10,000 connections leave the kernel busy for a while, all come
# after the ping-pong rounds.
n_present=${#present[@]}
for ((r = 0; r < runs; r++)); do
    echo "echo round $((r + 1))/$runs"
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
    echo "idle round $((r + 1))/$runs"
    for ((k = 0; k < n_present; k++)); do run_idle "${present[(k + r) % n_present]}"; done
done

# median <awk condition> <field>: median of that field over the matching lines.
median() {
    awk "$1 { print \$$2 }" "$results" | sort -g |
        awk '{ v[NR] = $1 } END { if (NR) { m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; print m } }'
}
fmt() { awk -v v="$1" -v d="$2" 'BEGIN { if (v == "") print "n/a"; else printf "%.*f\n", d, v }'; }

echo
if ((quick)); then
    echo "echo ping-pong, --quick: $n_requests round trips per cell, one run (smoke test: figures not meaningful)"
else
    echo "echo ping-pong: medians of $runs runs, ${seconds} s per cell after a 0.2 s warm-up; ratio = requests/s / raw epoll's"
fi
printf '%5s %6s  %-12s %10s %9s %9s %7s %8s  %s\n' conns size server "requests/s" p50_us p99_us ratio target result
for c in "${conns_list[@]}"; do
    for s in "${sizes[@]}"; do
        base=$(median "\$1 == \"echo\" && \$2 == \"raw_epoll\" && \$3 == $c && \$4 == $s" 5)
        for name in "${present[@]}"; do
            cond="\$1 == \"echo\" && \$2 == \"$name\" && \$3 == $c && \$4 == $s"
            rps=$(median "$cond" 5) p50=$(median "$cond" 6) p99=$(median "$cond" 7)
            ratio="" target="" result=""
            if [[ $name != raw_epoll ]]; then
                ratio=$(awk -v a="$rps" -v b="$base" 'BEGIN { if (a > 0 && b > 0) printf "%.2f", a / b }')
            fi
            if [[ -n ${rps_target[$name]:-} ]]; then
                target=">=${rps_target[$name]}x"
                result=$(awk -v r="$ratio" -v t="${rps_target[$name]}" 'BEGIN { print (r == "" ? "n/a" : r >= t ? "met" : "NOT met") }')
            fi
            printf '%5s %6s  %-12s %10s %9s %9s %7s %8s  %s\n' "$c" "$s" "$name" "$(fmt "$rps" 0)" \
                "$(fmt "$p50" 1)" "$(fmt "$p99" 1)" "${ratio:+${ratio}x}" "$target" "$result"
        done
    done
done

echo
echo "idle connections: $idle_conns per server, user-space bytes per connection = VmRSS growth / connections (median of $runs)"
printf '%-12s %15s %14s %11s %8s  %s\n' server rss_before_kib rss_after_kib bytes/conn target result
for name in "${present[@]}"; do
    cond="\$1 == \"idle\" && \$2 == \"$name\""
    bytes=$(median "$cond" 3) before=$(median "$cond" 4) after=$(median "$cond" 5)
    target="" result=""
    if [[ -n ${idle_target[$name]:-} ]]; then
        target="<=${idle_target[$name]}"
        result=$(awk -v b="$bytes" -v t="${idle_target[$name]}" 'BEGIN { print (b == "" ? "n/a" : b <= t ? "met" : "NOT met") }')
    fi
    printf '%-12s %15s %14s %11s %8s  %s\n' "$name" "$(fmt "$before" 0)" "$(fmt "$after" 0)" "$(fmt "$bytes" 0)" "$target" "$result"
done

if ((failed)); then echo "run_echo.sh: FAILED (see above)" >&2; exit 1; fi
echo "run_echo.sh: every echo server ran, echoed every byte back and exited cleanly"
