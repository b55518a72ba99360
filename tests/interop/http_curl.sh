#!/usr/bin/env bash
# curl against the http_server example.
#   http_curl.sh SERVER_CMD...   (SERVER_CMD makes it print 'listening on HOST:PORT')
# Checks: several requests on one keep-alive connection (curl's num_connects, and the
# server's own count of requests on the connection); Connection: close honoured; a POST
# body of random bytes echoed byte for byte; HTTP/1.0 (closes by default, keeps the
# connection with Connection: keep-alive); HEAD; 404; 405; 400 for garbage and 505 for an
# unknown version (sent raw through bash's /dev/tcp); pipelined requests answered in order.
# Then SIGINT: the server must exit 0.
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
expect_has() {  # what, needle, haystack
  if [[ "$3" == *"$2"* ]]; then echo "ok: $1"; else fail "$1: [$2] not in [$3]"; fi
}

"$@" >"$work/log" 2>&1 &
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
c() { curl --silent --show-error --max-time 30 "$@"; }

# Three requests on one keep-alive connection: curl connects once, and the server counts
# requests 1, 2, 3 on that connection.
out="$(c --write-out 'connects=%{num_connects}\n' "$url/" "$url/" "$url/?third")"
expect_eq "keep-alive: connections made for 3 requests" 1 \
  "$(grep -o 'connects=[0-9]*' <<<"$out" | cut -d= -f2 | awk '{ n += $1 } END { print n }')"
expect_has "keep-alive: third request on the same connection" \
  "request 3 on this connection" "$out"

# Connection: close is honoured: a new connection for each request.
out="$(c -H 'Connection: close' --write-out 'connects=%{num_connects}\n' "$url/" "$url/")"
expect_eq "Connection: close: connections made for 2 requests" 2 \
  "$(grep -o 'connects=[0-9]*' <<<"$out" | cut -d= -f2 | awk '{ n += $1 } END { print n }')"
expect_eq "Connection: close: each request the first on its connection" 2 \
  "$(grep -c 'request 1 on this connection' <<<"$out")"
headers="$(c -D - -o /dev/null -H 'Connection: close' "$url/")"
expect_has "Connection: close: the response says so" "Connection: close" "$headers"

# A POST with a body of random bytes (up to 1 MiB): echoed byte for byte.
for size in 0 1 65537 1048576; do
  head -c "$size" /dev/urandom >"$work/body"
  c --data-binary "@$work/body" -H 'Content-Type: application/x-test' -o "$work/echo" \
    -D "$work/headers" "$url/echo"
  if cmp -s "$work/body" "$work/echo"; then echo "ok: POST of $size bytes echoed"; else
    fail "POST of $size bytes: the echo differs ($(wc -c <"$work/echo") bytes back)"
  fi
done
expect_has "POST: the content type echoed" "Content-Type: application/x-test" \
  "$(tr -d '\r' <"$work/headers")"

# HTTP/1.0: the server closes after each response unless asked to keep the connection.
out="$(c --http1.0 -D - --write-out 'connects=%{num_connects}\n' "$url/" "$url/")"
expect_eq "HTTP/1.0: connections made for 2 requests" 2 \
  "$(grep -o 'connects=[0-9]*' <<<"$out" | cut -d= -f2 | awk '{ n += $1 } END { print n }')"
expect_has "HTTP/1.0: Connection: close by default" "Connection: close" "$(tr -d '\r' <<<"$out")"
out="$(c --http1.0 -H 'Connection: keep-alive' -D - --write-out 'connects=%{num_connects}\n' \
  "$url/" "$url/")"
expect_has "HTTP/1.0 with Connection: keep-alive: the response says so" \
  "Connection: keep-alive" "$(tr -d '\r' <<<"$out")"
expect_has "HTTP/1.0 with Connection: keep-alive: one connection" \
  "request 2 on this connection" "$out"

# HEAD: the headers of a GET, no body.
out="$(c --head "$url/")"
expect_has "HEAD: status" "HTTP/1.1 200 OK" "$out"
expect_has "HEAD: the length of the GET's body" "Content-Length: 48" "$(tr -d '\r' <<<"$out")"

# Status codes.
expect_eq "404 for an unknown path" 404 "$(c -o /dev/null -w '%{http_code}' "$url/nowhere")"
expect_eq "405 for GET /echo" 405 "$(c -o /dev/null -w '%{http_code}' "$url/echo")"
expect_eq "405 for DELETE /" 405 "$(c -o /dev/null -w '%{http_code}' -X DELETE "$url/")"

# Raw bytes that curl would not send, through bash's /dev/tcp.
raw() {  # sends $1, prints everything the server answers until it closes
  exec 3<>"/dev/tcp/127.0.0.1/$port" || return 1
  printf '%b' "$1" >&3
  timeout 10 cat <&3
  exec 3<&-
}
out="$(raw 'this is not http\r\n\r\n')"
expect_has "400 for garbage" "HTTP/1.1 400 Bad Request" "$out"
out="$(raw 'GET / HTTP/2.7\r\n\r\n')"
expect_has "505 for an unknown version" "HTTP/1.1 505" "$out"
out="$(raw 'GET / HTTP/1.1\r\nno colon here\r\n\r\n')"
expect_has "400 for a malformed header" "HTTP/1.1 400" "$out"
out="$(raw 'GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')"
expect_eq "pipelined: two responses, in order" "404 200" \
  "$(grep -o '^HTTP/1.1 [0-9]*' <<<"$out" | cut -d' ' -f2 | paste -sd' ')"

# SIGINT: a clean stop.
kill -INT "$server_pid"
wait "$server_pid"
rc=$?
server_pid=""
expect_eq "exit status after SIGINT" 0 "$rc"
expect_has "the server says why it stopped" "stopped by SIGINT" "$(cat "$work/log")"

if [ "$failures" -ne 0 ]; then
  echo "server log:"
  cat "$work/log"
  exit 1
fi
echo "all curl checks passed"
