#!/usr/bin/env bash
# Builds the ioloop benchmarks (Release, -O2), runs each workload --runs times (default 5),
# and prints medians, ioloop's ratios against its target peers, and the footprint figures.
#   bash tools/bench/run.sh [--runs R] [--quick] [--echo-only | --tls-echo-only | --no-echo]
# --quick runs everything once with tiny counts: CI's smoke test. The exit status is
# non-zero if anything fails to build or run, or a program reports a wrong count; a
# target not met is reported in the table but is not a failure. The echo servers
# (echo/run_echo.sh, then tls_echo/run_tls_echo.sh) run last; --echo-only runs just them,
# --tls-echo-only just the TLS ones, --no-echo all but them.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${BUILD_DIR:-$here/build}
cxx=${CXX:-c++}

runs=5 quick=0 echo_mode=all
while (($#)); do
    case $1 in
        --runs) runs=${2:?--runs needs a number}; shift ;;
        --runs=*) runs=${1#--runs=} ;;
        --quick) quick=1 ;;
        --echo-only) echo_mode=only ;;
        --tls-echo-only) echo_mode=tls ;;
        --no-echo) echo_mode=none ;;
        -h|--help) sed -n '2,9s/^# \{0,1\}//p' "$0"; exit 0 ;;
        *) echo "run.sh: unknown argument: $1" >&2; exit 2 ;;
    esac
    shift
done
[[ $runs =~ ^[1-9][0-9]*$ ]] || { echo "run.sh: --runs must be a positive integer" >&2; exit 2; }

n_callbacks=2000000 n_timers=1000000 timer_args=() n_tasks=1000000 n_spawn=1000 compile_runs=3
if ((quick)); then
    # Tiny counts, and deadlines within 50 ms instead of 1 s, so the timers finish fast.
    # Tasks: two batches of 10,000, so gathering more than one batch is still exercised.
    runs=1 n_callbacks=10000 n_timers=2000 timer_args=(--span-ms=50) n_tasks=20000 n_spawn=20 compile_runs=1
fi

failed=0
fail() { echo "FAIL: $*" >&2; failed=1; }

mkdir -p "$build"
log=$build/build.log
echo "building in $build (log: $log)"
if ! { cmake -S "$here" -B "$build" -DCMAKE_BUILD_TYPE=Release &&
       cmake --build "$build" -j "$(nproc)"; } >"$log" 2>&1; then
    tail -n 30 "$log" >&2
    fail "build"
    exit 1
fi

# run_echo: workload (e), the echo servers, with this run's rounds (or --quick).
run_echo() {
    local args=(--build "$build" --runs "$runs")
    ((quick)) && args+=(--quick)
    echo
    bash "$here/echo/run_echo.sh" "${args[@]}" || fail "echo (see above)"
}
# run_tls_echo: workload (j), the TLS echo servers, likewise.
run_tls_echo() {
    local args=(--build "$build" --runs "$runs")
    ((quick)) && args+=(--quick)
    echo
    bash "$here/tls_echo/run_tls_echo.sh" "${args[@]}" || fail "TLS echo (see above)"
}
if [[ $echo_mode == only || $echo_mode == tls ]]; then
    [[ $echo_mode == only ]] && run_echo
    run_tls_echo
    if ((failed)); then echo "run.sh: FAILED (see above)" >&2; exit 1; fi
    exit 0
fi

results=$build/results.txt
: >"$results"

# run_one <binary> <expected N> [args...]: runs one program, checks its exit status and
# its result line, and appends "<workload> <impl> <ops/s>" to $results.
# A <binary> ending in .py is a Python script of this folder, run by python3.
run_one() {
    local bin=$build/$1 n=$2 out
    shift 2
    local cmd=("$bin")
    if [[ $bin == *.py ]]; then
        bin=$here/$(basename "$bin") cmd=(python3 "$here/$(basename "$bin")")
        command -v python3 >/dev/null || { fail "python3 not found (for $(basename "$bin"))"; return; }
    elif [[ ! -x $bin ]]; then fail "$(basename "$bin"): not built"; return; fi
    if ! out=$("${cmd[@]}" "$n" "$@"); then fail "$(basename "$bin") $n $*: exited non-zero"; return; fi
    local workload impl count ops secs s rate unit extra
    read -r workload impl count ops secs s rate unit extra <<<"$out"
    if [[ $ops != ops || $s != s || $unit != ops/s || -n $extra ]]; then
        fail "$(basename "$bin"): unexpected output: $out"
    elif [[ $count != "$n" ]]; then
        fail "$(basename "$bin"): ran $count ops, expected $n"
    else
        echo "  $out"
        echo "$workload $impl $rate" >>"$results"
    fi
}

peers=(ioloop libuv libev asio)
# Rounds interleave the implementations, so slow drift on the machine hits all alike.
for ((r = 1; r <= runs; r++)); do
    echo "round $r/$runs"
    for impl in "${peers[@]}" reference; do run_one "callbacks_$impl" "$n_callbacks"; done
    for impl in "${peers[@]}"; do run_one "timers_$impl" "$n_timers" "${timer_args[@]}"; done
    for impl in "${peers[@]}"; do run_one "timers_$impl" "$n_timers" --cancel "${timer_args[@]}"; done
    for impl in ioloop asio; do run_one "tasks_$impl" "$n_tasks"; done
    for prog in spawn_ioloop spawn_libuv spawn_asyncio.py; do run_one "$prog" "$n_spawn"; done
done

# median <workload> <impl>: median ops/s over the runs, empty if there were none.
median() {
    awk -v w="$1" -v i="$2" '$1 == w && $2 == i { print $3 }' "$results" | sort -g |
        awk '{ v[NR] = $1 } END { if (NR) printf "%.0f\n", NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# The table: every implementation's median; on each target peer's row, ioloop's ratio
# against it, the target and whether it is met. Other peer rows show the ratio only.
echo
printf '%-14s %-10s %14s %9s %9s  %s\n' workload impl "median ops/s" ratio target result
row() { printf '%-14s %-10s %14s %9s %9s  %s\n' "$@"; }
# ratio <ioloop rate> <peer rate>
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a > 0 && b > 0) printf "%.2f", a / b }'; }
meets() { awk -v r="$1" -v t="$2" -v op="$3" 'BEGIN { ok = op == ">=" ? r >= t : r <= t; print (r == "" ? "n/a" : ok ? "met" : "NOT met") }'; }

# report_workload <workload> <target peer> <target ratio> [<reference target ratio>] [<peers>]
# <peers> is a space-separated list of the implementations that have this workload
# (default: libuv libev asio).
report_workload() {
    local workload=$1 target_peer=$2 target=$3 ref_target=${4:-}
    local io rate impl ratio_s target_s result
    io=$(median "$workload" ioloop)
    row "$workload" ioloop "${io:-n/a}" - "" ""
    local impls
    read -r -a impls <<<"${5:-libuv libev asio}"
    [[ -n $ref_target ]] && impls+=(reference)
    for impl in "${impls[@]}"; do
        rate=$(median "$workload" "$impl")
        ratio_s=$(ratio "${io:-0}" "${rate:-0}")
        target_s="" result=""
        if [[ $impl == "$target_peer" ]]; then target_s=">=${target}x"; result=$(meets "$ratio_s" "$target" ">=")
        elif [[ $impl == reference ]]; then target_s=">=${ref_target}x"; result=$(meets "$ratio_s" "$ref_target" ">=")
        fi
        row "$workload" "$impl" "${rate:-n/a}" "${ratio_s:+${ratio_s}x}" "$target_s" "$result"
    done
}

# Callbacks: the target peer is the fastest of libuv, libev and asio in this run.
fastest=libuv best=0
for impl in libuv libev asio; do
    rate=$(median callbacks "$impl")
    if [[ -n $rate ]] && awk -v a="$rate" -v b="$best" 'BEGIN { exit !(a > b) }'; then fastest=$impl best=$rate; fi
done
report_workload callbacks "$fastest" 1.10 0.90
report_workload timers libev 1.50
report_workload timers-cancel libev 1.50
report_workload tasks asio 3.00 "" asio
report_workload spawn libuv 1.00 "" "libuv asyncio"
echo "(callbacks: ${n_callbacks} in 64 chains, wall time; timers: ${n_timers} per run, per CPU-second;"
echo " tasks: ${n_tasks} gathered 10000 at a time, wall time; spawn: /bin/true started and"
echo " waited for ${n_spawn} times, one at a time, wall time; medians of $runs)"

# Files (g): read_file of a 100 MiB file (1 MiB with --quick) against a plain blocking read
# loop in C, in turns, the file warm in the page cache (it was just written): the ratio is
# what the executor hop and ioloop's string cost over the system calls. Meanwhile a 1 ms
# periodic timer on ioloop's loop records its worst lateness (target < 5 ms).
run_files() {
    local mib=100 data=$build/read_file.data r out c_secs io_secs late line
    ((quick)) && mib=1
    local c_times=() io_times=() lates=()
    if ! head -c $((mib << 20)) /dev/urandom >"$data"; then fail "files: writing $data"; return; fi
    for ((r = 1; r <= runs; r++)); do
        if ! out=$("$build/read_file_c" "$data" 2>/dev/null); then fail "read_file_c: exited non-zero"; break; fi
        read -r _ _ _ _ c_secs _ <<<"$out"
        if ! out=$("$build/read_file_ioloop" "$data" 2>/dev/null); then fail "read_file_ioloop: exited non-zero"; break; fi
        read -r _ _ _ _ io_secs _ late _ <<<"$out"
        echo "  read_file round $r: c $c_secs s, ioloop $io_secs s, 1 ms timer worst lateness $late us"
        c_times+=("$c_secs") io_times+=("$io_secs") lates+=("$late")
    done
    rm -f "$data"
    ((${#io_times[@]})) || return
    local med='{ v[NR] = $1 } END { printf "%s", NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
    c_secs=$(printf '%s\n' "${c_times[@]}" | sort -g | awk "$med")
    io_secs=$(printf '%s\n' "${io_times[@]}" | sort -g | awk "$med")
    late=$(printf '%s\n' "${lates[@]}" | sort -g | tail -n 1)
    line=$(printf 'read_file %d MiB (median of %d): ioloop %s s, C read loop %s s, ratio %sx;' \
        "$mib" "${#io_times[@]}" "$io_secs" "$c_secs" "$(ratio "$io_secs" "$c_secs")")
    echo "$line 1 ms timer worst lateness $late us, target <5000 us: $( ((late < 5000)) && echo met || echo "NOT met")"
}
echo
run_files

# Sendfile (i): a 100 MiB file (1 MiB with --quick) to a TCP peer over loopback, in turns:
# ioloop's loop.sock_sendfile (sendfile(2) on epoll), a blocking read/write loop in C, and a
# blocking sendfile(2) loop in C; the receiver is the same forked child for all three. The
# ratio reported is the read/write loop's time over ioloop's (> 1: ioloop is faster).
run_sendfile() {
    local mib=100 data=$build/sendfile.data r out secs line
    ((quick)) && mib=1
    local io_times=() rw_times=() sf_times=()
    if ! head -c $((mib << 20)) /dev/urandom >"$data"; then fail "sendfile: writing $data"; return; fi
    for ((r = 1; r <= runs; r++)); do
        if ! out=$("$build/sendfile_ioloop" "$data"); then fail "sendfile_ioloop: exited non-zero"; break; fi
        read -r _ _ _ _ secs _ <<<"$out"; io_times+=("$secs")
        if ! out=$("$build/sendfile_c" "$data"); then fail "sendfile_c: exited non-zero"; break; fi
        read -r _ _ _ _ secs _ <<<"$out"; rw_times+=("$secs")
        if ! out=$("$build/sendfile_c" "$data" sendfile); then fail "sendfile_c sendfile: exited non-zero"; break; fi
        read -r _ _ _ _ secs _ <<<"$out"; sf_times+=("$secs")
        echo "  sendfile round $r: ioloop ${io_times[-1]} s, C read/write ${rw_times[-1]} s, C sendfile(2) ${sf_times[-1]} s"
    done
    rm -f "$data"
    ((${#sf_times[@]} == runs)) || return
    local med='{ v[NR] = $1 } END { printf "%s", NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
    local io rw sf
    io=$(printf '%s\n' "${io_times[@]}" | sort -g | awk "$med")
    rw=$(printf '%s\n' "${rw_times[@]}" | sort -g | awk "$med")
    sf=$(printf '%s\n' "${sf_times[@]}" | sort -g | awk "$med")
    printf 'sendfile %d MiB over loopback (median of %d): ioloop sendfile %s s, C read/write %s s (%sx ioloop), C sendfile(2) %s s (%sx ioloop)\n' \
        "$mib" "$runs" "$io" "$rw" "$(ratio "$rw" "$io")" "$sf" "$(ratio "$sf" "$io")"
}
echo
run_sendfile

# Footprint: compile time of the timer hello and of the coroutine hello at -O0 against
# asio's, and the timer hello's -Os -s size, dynamic and static, against a plain puts hello.
echo
fp=$here/footprint out=$build/footprint
mkdir -p "$out"
cxxflags=(-std=c++20 -I"$root/include")

# compile_seconds <source>: median wall seconds of compiling (-c) it at -O0.
compile_seconds() {
    local src=$1 i t0 times=()
    for ((i = 0; i < compile_runs; i++)); do
        t0=$EPOCHREALTIME
        "$cxx" "${cxxflags[@]}" -O0 -c "$src" -o "$out/compile.o" || return 1
        times+=("$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.3f", b - a }')")
    done
    printf '%s\n' "${times[@]}" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}
# build_hello <name> <extra flags...>: builds footprint/<name>.cpp at -Os -s, checks it
# prints "hello", and prints its size in bytes.
build_hello() {
    local name=$1 exe=$out/$1${2:-}
    shift
    "$cxx" "${cxxflags[@]}" -Os -s "$@" "$fp/$name.cpp" -o "$exe" -pthread || return 1
    [[ $("$exe") == hello ]] || { echo "$exe did not print hello" >&2; return 1; }
    stat -c %s "$exe"
}

if c_io=$(compile_seconds "$fp/hello_ioloop.cpp") && c_asio=$(compile_seconds "$fp/hello_asio.cpp"); then
    r=$(ratio "$c_io" "$c_asio")
    printf 'footprint compile -O0 (median of %d): ioloop %s s, asio %s s, ratio %sx, target <=0.35x: %s\n' \
        "$compile_runs" "$c_io" "$c_asio" "$r" "$(meets "$r" 0.35 "<=")"
else
    fail "footprint: compiling the hello programs"
fi
if c_io=$(compile_seconds "$fp/coro_hello_ioloop.cpp") && c_asio=$(compile_seconds "$fp/coro_hello_asio.cpp"); then
    r=$(ratio "$c_io" "$c_asio")
    printf 'footprint coroutine hello compile -O0 (median of %d): ioloop %s s, asio %s s, ratio %sx, target <=0.35x: %s\n' \
        "$compile_runs" "$c_io" "$c_asio" "$r" "$(meets "$r" 0.35 "<=")"
else
    fail "footprint: compiling the coroutine hello programs"
fi
# The coroutine hellos must also link and print hello; their sizes are context, not targets.
if d_cio=$(build_hello coro_hello_ioloop) && d_casio=$(build_hello coro_hello_asio); then
    printf 'footprint coroutine hello size -Os -s dynamic: ioloop %d B, asio %d B\n' "$d_cio" "$d_casio"
else
    fail "footprint: building or running the coroutine hello programs"
fi
if d_puts=$(build_hello hello_puts) && d_io=$(build_hello hello_ioloop) &&
   s_puts=$(build_hello hello_puts -static) && s_io=$(build_hello hello_ioloop -static) &&
   s_exc=$(build_hello hello_exceptions -static); then
    printf 'footprint size -Os -s dynamic: puts %d B, ioloop %d B (+%d B)\n' "$d_puts" "$d_io" $((d_io - d_puts))
    delta=$((s_io - s_puts))
    printf 'footprint size -Os -s static:  puts %d B, ioloop %d B (+%d B), target <=+65536 B: %s\n' \
        "$s_puts" "$s_io" "$delta" "$( ((delta <= 65536)) && echo met || echo "NOT met")"
    # Context, not a target: how much of that any C++ program that throws pays.
    printf 'footprint size -Os -s static:  throwing hello %d B (+%d B over puts; ioloop +%d B over it)\n' \
        "$s_exc" $((s_exc - s_puts)) $((s_io - s_exc))
else
    fail "footprint: building or running the hello programs"
fi

if [[ $echo_mode == all ]]; then
    run_echo
    run_tls_echo
fi

if ((failed)); then echo "run.sh: FAILED (see above)" >&2; exit 1; fi
echo "run.sh: all benchmark programs ran and verified their counts"
