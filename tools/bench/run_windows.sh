#!/usr/bin/env bash
# Workloads (a) callbacks, (b) timers and (d) tasks built for Windows with mingw-w64
# (-O2) and run under Wine: ioloop on iocp and on select, and asio (Debian's libasio-dev,
# header-only, whose Windows build uses IOCP). Medians of --runs runs (default 3).
# For information only: Wine is not Windows, and each of its system calls is a round trip
# to wineserver, so these figures say little about Windows itself. Timers are scored per
# CPU second, which Wine counts in 15.6 ms ticks: --quick's tiny runs may read 0.
#   bash tools/bench/run_windows.sh [--runs R] [--quick]
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${BUILD_DIR:-$here/build-windows}
cxx=x86_64-w64-mingw32-g++-posix

runs=3 quick=0
while (($#)); do
    case $1 in
        --runs) runs=${2:?--runs needs a number}; shift ;;
        --quick) quick=1 ;;
        -h|--help) sed -n '2,9s/^# \{0,1\}//p' "$0"; exit 0 ;;
        *) echo "run_windows.sh: unknown argument: $1" >&2; exit 2 ;;
    esac
    shift
done
n_callbacks=2000000 n_timers=1000000 timer_args=() n_tasks=1000000
((quick)) && runs=1 n_callbacks=10000 n_timers=2000 timer_args=(--span-ms=50) n_tasks=20000

command -v "$cxx" >/dev/null && command -v wine >/dev/null || {
    echo "run_windows.sh: needs $cxx and wine (apt-get install g++-mingw-w64-x86-64-posix wine wine64)" >&2
    exit 1
}

# asio's headers alone, so that nothing else of the build machine's /usr/include is seen.
mkdir -p "$build/asio-include"
ln -sfn /usr/include/asio "$build/asio-include/asio"
ln -sfn /usr/include/asio.hpp "$build/asio-include/asio.hpp"

flags=(-std=c++20 -O2 -DNDEBUG -static)
libs=(-lws2_32 -lmswsock)
build_one() {  # <source> <exe> <flags...>
    local src=$1 exe=$2
    shift 2
    "$cxx" "${flags[@]}" "$@" "$here/$src.cpp" -o "$build/$exe.exe" "${libs[@]}" ||
        { echo "FAIL: building $exe" >&2; exit 1; }
}
echo "building in $build"
for w in callbacks timers tasks; do
    build_one "${w}_ioloop" "${w}_ioloop_iocp" -DIOLOOP_BACKEND_IOCP -I "$root/include"
    build_one "${w}_ioloop" "${w}_ioloop_select" -DIOLOOP_BACKEND_SELECT -I "$root/include"
    build_one "${w}_asio" "${w}_asio" -I "$build/asio-include"
done

export WINEDEBUG=-all
wine cmd /c exit >/dev/null 2>&1  # the first start creates the prefix

# rate <exe> <args...>: the ops/s the program prints (its last field but one).
rate() { wine "$build/$1.exe" "${@:2}" | awk '{ print $(NF-1) }'; }
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)] }'; }

printf '%-10s %-14s %14s %12s\n' workload impl "median ops/s" "vs asio"
for w in callbacks timers tasks; do
    case $w in
        callbacks) args=("$n_callbacks") ;;
        timers) args=("$n_timers" "${timer_args[@]}") ;;
        tasks) args=("$n_tasks") ;;
    esac
    asio=$(for ((i = 0; i < runs; ++i)); do rate "${w}_asio" "${args[@]}"; done | median)
    for impl in ioloop_iocp ioloop_select asio; do
        m=$asio
        [[ $impl != asio ]] && m=$(for ((i = 0; i < runs; ++i)); do rate "${w}_$impl" "${args[@]}"; done | median)
        r=$(awk -v a="$m" -v b="$asio" 'BEGIN { if (a > 0 && b > 0) printf "%.1fx", a / b }')
        printf '%-10s %-14s %14s %12s\n' "$w" "$impl" "$m" "$r"
        [[ -n $m ]] || { echo "FAIL: $w $impl printed no rate" >&2; exit 1; }
    done
done
