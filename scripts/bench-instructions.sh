#!/usr/bin/env bash
# Instructions per proxied request, counted by callgrind: a measure that does not move with the
# machine's load, for user-space changes on the gateway's hot path.
#
#   scripts/bench-instructions.sh [MOAT_BINARY] [REQUESTS]   (default build/moat, 2000;
#                                                             needs valgrind and nginx)
#
# An upstream (nginx, `return 200`), a private service in front of it, and one keep-alive
# client sending REQUESTS GETs with a valid ID token, one at a time. Only Moat's worker threads
# are counted (callgrind collects inside boost::asio::detail::scheduler::run); the result is
# their instructions divided by REQUESTS, and the callgrind file is kept for callgrind_annotate.
set -euo pipefail
moat=$(realpath "${1:-build/moat}")
requests=${2:-2000}
for tool in valgrind callgrind_annotate nginx python3; do
  command -v "$tool" >/dev/null || { echo "bench-instructions: $tool is missing" >&2; exit 1; }
done
w=$(mktemp -d /tmp/moat-instr.XXXXXX)
moat_pid=""
cleanup() {
  [ -n "$moat_pid" ] && kill "$moat_pid" 2>/dev/null || true
  [ -f "$w/up.pid" ] && kill "$(cat "$w/up.pid")" 2>/dev/null || true
  wait 2>/dev/null || true
}
trap cleanup EXIT
source "$(dirname "$0")/bench-lib.sh"
up=$(free_port); gw=$(free_port); api=$(free_port)
cat >"$w/up.conf" <<EOF
worker_processes 1; pid $w/up.pid; error_log $w/up.err;
events { worker_connections 1024; }
http { access_log off; client_body_temp_path $w/b; proxy_temp_path $w/p; fastcgi_temp_path $w/f;
  uwsgi_temp_path $w/u; scgi_temp_path $w/s; keepalive_requests 1000000;
  server { listen 127.0.0.1:$up; location / { return 200 "hello from upstream\n"; } } }
EOF
nginx -c "$w/up.conf" -p "$w" 2>/dev/null

serve() {  # $@: command prefix (e.g. valgrind …)
  "$@" "$moat" serve --home "$w/home" --gateway-addr "127.0.0.1:$gw" --api-addr "127.0.0.1:$api" \
    --threads 1 --no-access-log >"$w/moat.out" 2>"$w/moat.log" &
  moat_pid=$!
  wait_for_moat bench-instructions "$moat_pid" "$w/moat.out" "$w/moat.log" 600
}

# Deploy and mint a token with a plain server, then count with a fresh one on the same home.
serve
export MOAT_HOME=$w/home MOAT_API_ENDPOINT=http://127.0.0.1:$api MOAT_CONFIG=$w/cli
"$moat" run deploy bench --upstream "http://127.0.0.1:$up" --region us-central1 --project bench \
  --no-allow-unauthenticated --quiet >/dev/null
url=$("$moat" run services describe bench --region us-central1 --project bench --format='value(uri)')
host=${url#http://}; host=${host%:*}
token=$("$moat" auth print-identity-token --audiences="$url")
kill "$moat_pid"; wait "$moat_pid" 2>/dev/null || true; moat_pid=""

serve valgrind --tool=callgrind --callgrind-out-file="$w/callgrind.out" --collect-atstart=no \
  '--toggle-collect=boost::asio::detail::scheduler::run*'
python3 - "$gw" "$host" "$token" "$requests" <<'EOF'
import socket, sys
port, host, token, n = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
s = socket.create_connection(("127.0.0.1", port))
req = f"GET / HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n\r\n".encode()
for _ in range(n):
    s.sendall(req)
    buf = b""
    while b"hello from upstream" not in buf:
        chunk = s.recv(65536)
        if not chunk:
            sys.exit("bench-instructions: the gateway closed the connection")
        buf += chunk
    if not buf.startswith(b"HTTP/1.1 200"):
        sys.exit("bench-instructions: not a 200: " + buf[:100].decode(errors="replace"))
EOF
kill -INT "$moat_pid"; wait "$moat_pid" 2>/dev/null || true; moat_pid=""
callgrind_annotate "$w/callgrind.out" 2>/dev/null |
  awk -v n="$requests" '/PROGRAM TOTALS/ {c=$1; gsub(",", "", c); printf "%.0f instructions per request (%s requests)\n", c/n, n}'
echo "callgrind file: $w/callgrind.out (callgrind_annotate --inclusive=yes for the breakdown)"
