#!/usr/bin/env bash
# curl against the file_server example (loop.sendfile).
#   file_server_curl.sh SERVER_CMD...   (the script adds --root DIR --port 0; SERVER_CMD
#                                        makes it print 'listening on HOST:PORT')
# Checks: a 100 MiB file of random bytes, generated into a temporary directory, downloaded
# whole (its sha256 equal to the original's); a small file in a subdirectory; an empty
# file; HEAD says the length and sends no body; 404 for a missing file, a directory and a
# path with "..". Then SIGINT: the server must exit 0.
set -uo pipefail
work="$(mktemp -d)"
server_pid=""
cleanup() {
  [ -z "$server_pid" ] || kill -9 "$server_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
failures=0
fail() {
  echo "FAILED: $*"
  failures=$((failures + 1))
}
expect_eq() {  # what, expected, got
  if [ "$2" == "$3" ]; then echo "ok: $1"; else fail "$1: expected [$2], got [$3]"; fi
}

mkdir -p "$work/root/sub" "$work/out"
head -c $((100 * 1024 * 1024)) /dev/urandom >"$work/root/big.bin"
printf 'hello from a subdirectory\n' >"$work/root/sub/small.txt"
: >"$work/root/empty"
echo "secret" >"$work/outside"

"$@" --root "$work/root" --port 0 >"$work/log" 2>&1 &
server_pid=$!
port=""
for _ in $(seq 100); do
  port="$(sed -n 's/.*listening on .*:\([0-9][0-9]*\)$/\1/p' "$work/log" | head -1)"
  [ -n "$port" ] && break
  kill -0 "$server_pid" 2>/dev/null || break
  sleep 0.1
done
if [ -z "$port" ]; then
  echo "FAILED: the server did not say where it listens:"
  cat "$work/log"
  exit 1
fi
url="http://127.0.0.1:$port"
c() { curl --silent --show-error --max-time 120 "$@"; }

# The 100 MiB file, by hash.
code="$(c -o "$work/out/big.bin" -w '%{http_code}' "$url/big.bin")"
expect_eq "100 MiB: status" 200 "$code"
expect_eq "100 MiB: size" $((100 * 1024 * 1024)) "$(wc -c <"$work/out/big.bin" | tr -d ' ')"
expect_eq "100 MiB: sha256" "$(sha256sum <"$work/root/big.bin" | cut -d' ' -f1)" \
  "$(sha256sum <"$work/out/big.bin" | cut -d' ' -f1)"

# A small file in a subdirectory, and an empty one.
expect_eq "small file" "hello from a subdirectory" "$(c "$url/sub/small.txt")"
code="$(c -o "$work/out/empty" -w '%{http_code}' "$url/empty")"
expect_eq "empty file: status" 200 "$code"
expect_eq "empty file: size" 0 "$(wc -c <"$work/out/empty" | tr -d ' ')"

# HEAD: the length, no body.
headers="$(c --head "$url/big.bin" | tr -d '\r')"
expect_eq "HEAD: Content-Length" "Content-Length: $((100 * 1024 * 1024))" \
  "$(grep '^Content-Length' <<<"$headers")"

# 404s: missing, a directory, and a way out of the root (curl would squash "..": raw).
expect_eq "404 for a missing file" 404 "$(c -o /dev/null -w '%{http_code}' "$url/nothing")"
expect_eq "404 for a directory" 404 "$(c -o /dev/null -w '%{http_code}' "$url/sub")"
exec 3<>"/dev/tcp/127.0.0.1/$port"
printf 'GET /../outside HTTP/1.0\r\n\r\n' >&3
out="$(timeout 10 cat <&3)"
exec 3<&-
expect_eq "404 for a path with .." "HTTP/1.0 404 Not Found" "$(head -1 <<<"$out" | tr -d '\r')"

# SIGINT: a clean stop.
kill -INT "$server_pid"
wait "$server_pid"
rc=$?
server_pid=""
expect_eq "exit status after SIGINT" 0 "$rc"

if [ "$failures" -ne 0 ]; then
  echo "server log:"
  cat "$work/log"
  exit 1
fi
echo "all file_server checks passed"
