#!/usr/bin/env bash
# Builds the test suite for Windows with mingw-w64 and runs it under Wine: every test once
# per Windows backend (iocp, select). On a fresh Debian machine it first installs what it
# needs through apt-get, saying what it installs. Extra arguments go to CMake's configure
# step; IOLOOP_WINDOWS_BUILD_DIR names the build directory (default build-windows).
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v cmake >/dev/null || missing+=(cmake)
command -v make >/dev/null || missing+=(make)
command -v x86_64-w64-mingw32-g++-posix >/dev/null || missing+=(g++-mingw-w64-x86-64-posix)
command -v wine >/dev/null || missing+=(wine)
# wine64 holds the 64-bit loader; the `wine` command alone cannot start a 64-bit program.
[ -x /usr/lib/wine/wine64 ] || missing+=(wine64)
[ -f /usr/include/doctest/doctest.h ] || missing+=(doctest-dev)
if [ ${#missing[@]} -gt 0 ]; then
  echo "tools/test-windows.sh: installing ${missing[*]} with apt-get"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends "${missing[@]}"
fi

build="${IOLOOP_WINDOWS_BUILD_DIR:-build-windows}"
jobs="$(nproc 2>/dev/null || echo 2)"
# Wine's "fixme:" lines say what it does not emulate; they would bury a test's own output.
export WINEDEBUG="${WINEDEBUG:--all}"

# Under CI the compile lines are left out (errors still reach stderr); the tests' output is not.
exec 3>&1
[ "${CI:-}" != true ] || exec 3>/dev/null
cmake -S . -B "$build" -DCMAKE_TOOLCHAIN_FILE=cmake/mingw-w64.cmake "$@" >&3
cmake --build "$build" -j "$jobs" >&3

# The first Wine run creates its prefix (~/.wine), which takes about 10 s: done here once,
# so that no test's timeout pays for it, and two tests starting at once do not race for it.
start=$(date +%s)
wine cmd /c exit >/dev/null 2>&1 || true
echo "tools/test-windows.sh: Wine is ready ($(($(date +%s) - start)) s), $(wine --version)"

ctest --test-dir "$build" --output-on-failure -j "$jobs"
