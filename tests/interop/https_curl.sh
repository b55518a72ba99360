#!/usr/bin/env bash
# curl against the http_server example serving HTTPS (built with WITH_TLS).
#   https_curl.sh SERVER_CMD...   (SERVER_CMD without --cert/--key/--port/--timeout: this
#                                  script adds them, with certificates it makes)
# Checks, each verifying the server's certificate against the test CA (curl --cacert) for
# the name localhost: GET / (status 200, the body), over TLS 1.3 (--tlsv1.3) and TLS 1.2
# (--tls-max 1.2), each as curl reports it; ALPN http/1.1 chosen from curl's h2 and
# http/1.1; three requests on one keep-alive TLS connection; a 1 MiB POST echoed byte for
# byte; a plain-HTTP request to the HTTPS port fails without stopping the server; a client
# that connects and never starts its handshake is dropped after the handshake timeout (the
# server's --timeout, 2 s here: between 1.8 s and 2 s + 8 s). Then SIGINT: exit 0.
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
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

sh "$here/../make_certs.sh" "$work/certs" || { echo "FAILED: make_certs.sh"; exit 1; }
timeout=2
"$@" --port 0 --timeout "$timeout" --cert "$work/certs/server.pem" --key "$work/certs/server.key" \
  >"$work/log" 2>&1 &
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
url="https://localhost:$port"
c() { curl --silent --show-error --max-time 30 --cacert "$work/certs/ca.pem" "$@"; }

# GET / over each TLS version; curl -v says what was negotiated.
for version in --tlsv1.3 "--tls-max 1.2"; do
  # shellcheck disable=SC2086  # $version: one option or two
  out="$(c --http1.1 $version -v -w 'status=%{http_code}\n' "$url/" 2>"$work/verbose")"
  expect_has "GET / ($version): status" "status=200" "$out"
  expect_has "GET / ($version): body" "Hello from ioloop: request 1 on this connection" "$out"
  expected="TLSv1.3"
  [ "$version" == --tlsv1.3 ] || expected="TLSv1.2"
  expect_has "GET / ($version): curl's TLS version" "SSL connection using $expected" \
    "$(cat "$work/verbose")"
done

# ALPN: curl offers h2 and http/1.1 (without --http1.1); the server takes http/1.1.
c -v -o /dev/null "$url/" 2>"$work/verbose"
expect_has "ALPN: the server chose http/1.1" "ALPN: server accepted http/1.1" \
  "$(cat "$work/verbose")"

# Three requests on one keep-alive TLS connection.
out="$(c --write-out 'connects=%{num_connects}\n' "$url/" "$url/" "$url/?third")"
expect_eq "keep-alive over TLS: connections made for 3 requests" 1 \
  "$(grep -o 'connects=[0-9]*' <<<"$out" | cut -d= -f2 | awk '{ n += $1 } END { print n }')"
expect_has "keep-alive over TLS: third request on the same connection" \
  "request 3 on this connection" "$out"

# A 1 MiB POST, echoed byte for byte.
head -c 1048576 /dev/urandom >"$work/body"
c --data-binary "@$work/body" -H 'Content-Type: application/x-test' -o "$work/echo" "$url/echo"
if cmp -s "$work/body" "$work/echo"; then echo "ok: POST of 1 MiB echoed over TLS"; else
  fail "POST of 1 MiB: the echo differs ($(wc -c <"$work/echo") bytes back)"
fi

# Plain HTTP to the HTTPS port: no response, and the server goes on.
if curl --silent --max-time 10 -o /dev/null "http://127.0.0.1:$port/"; then
  fail "plain HTTP to the HTTPS port got a response"
else
  echo "ok: plain HTTP to the HTTPS port gets no response"
fi
expect_eq "still serving after a plain-HTTP client" 200 "$(c -o /dev/null -w '%{http_code}' "$url/")"

# A client that connects and sends nothing: dropped once the handshake timeout is up.
start=$(date +%s%N)
exec 3<>"/dev/tcp/127.0.0.1/$port"
timeout $((timeout + 8)) cat <&3 >/dev/null
rc=$?
exec 3<&-
elapsed_ms=$((($(date +%s%N) - start) / 1000000))
if [ "$rc" -eq 0 ] && [ "$elapsed_ms" -ge $((timeout * 900)) ]; then
  echo "ok: a silent client dropped by the handshake timeout (after $elapsed_ms ms)"
else
  fail "a silent client: closed after $elapsed_ms ms, cat's status $rc (timeout ${timeout} s)"
fi

# SIGINT: a clean stop.
kill -INT "$server_pid"
wait "$server_pid"
rc=$?
server_pid=""
expect_eq "exit status after SIGINT" 0 "$rc"
expect_has "the server says it served HTTPS" "HTTPS with the certificate" "$(cat "$work/log")"
expect_has "the server says why it stopped" "stopped by SIGINT" "$(cat "$work/log")"

if [ "$failures" -ne 0 ]; then
  echo "server log:"
  cat "$work/log"
  exit 1
fi
echo "all curl HTTPS checks passed"
