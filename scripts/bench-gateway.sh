#!/usr/bin/env bash
# Gateway benchmark: Moat (IAM enforced, valid cached token) against nginx in front of the same
# upstream, in the same run, on the same cores.
#
#   scripts/bench-gateway.sh [MOAT_BINARY]      (default build/moat; needs wrk and nginx)
#
# Setup, all on 127.0.0.1 with free ports:
#   upstream          nginx, 1 worker, `return 200` with a small body            (CPU 1)
#   nginx-proxy       nginx proxy_pass to the upstream, keep-alive pool, 1 worker (CPU 0)
#   nginx-authreq     nginx auth_request: every request first asks an external verifier, here
#                     Moat's forward-auth listener (--forward-auth-addr: X-Forwarded-Host picks
#                     the same private service, the same token is verified), then proxy_passes
#                     (CPU 0; Moat's thread shares it, as the verifier would in practice)
#   moat              moat serve --threads 1, a private service fronting the upstream   (CPU 0)
#   wrk               1 thread, C connections, D seconds per run                       (CPU 1)
# Every setup gets the same request — with the caller's ID token in Authorization, as a real
# client of a private service sends it — so the upstream and wrk, which share CPU 1, do the same
# work per request whichever proxy is measured. (nginx_proxy_pass_bare: the same proxy
# without that header, for reference; earlier versions of this script used it as the
# baseline.)
# The proxies under test share CPU 0, one at a time; wrk and the upstream share CPU 1. Runs
# are interleaved for ROUNDS rounds and the median is reported, with access logs on (to a
# file, for both) and off, and so is the median of the per-round ratios to nginx proxy_pass.
# Then memory per idle keep-alive connection: N connections, each after one request, RSS delta
# of the proxy process.
#
# Environment: ROUNDS (5), DURATION (5s), CONNS (64), IDLE_CONNS (5000), PERF_OUT (unset: when
# set to a file, Moat is also profiled with `perf record -g` during one extra wrk run with access
# logs off, and `perf report` text goes to that file).
set -euo pipefail
source "$(dirname "$0")/bench-lib.sh"
moat=$(realpath "${1:-build/moat}")
rounds=${ROUNDS:-5}
duration=${DURATION:-5s}
conns=${CONNS:-64}
idle_conns=${IDLE_CONNS:-5000}
for tool in wrk nginx python3 taskset; do
  command -v "$tool" >/dev/null || { echo "bench-gateway: $tool is missing (make bench installs it)" >&2; exit 1; }
done
[ -x "$moat" ] || { echo "bench-gateway: no moat binary at $moat (run make build)" >&2; exit 1; }

work=$(mktemp -d /tmp/moat-bench.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for f in "$work"/*.pid; do [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT INT TERM
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

# Six distinct free ports, all bound at once (asked for one by one, the kernel may hand out the
# same port twice).
read -r up_port px_port ar_port gw_port api_port fa_port < <(python3 -c '
import socket
socks = [socket.socket() for _ in range(6)]
for s in socks: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))')

# --- Moat ---------------------------------------------------------------------------------
start_moat() {  # $1: extra flags
  taskset -c 0 "$moat" serve --home "$work/home" --gateway-addr "127.0.0.1:$gw_port" \
    --api-addr "127.0.0.1:$api_port" --forward-auth-addr "127.0.0.1:$fa_port" --threads 1 $1 >"$work/moat.out" 2>"$work/moat.log" &
  moat_pid=$!
  pids+=("$moat_pid")
  wait_for_moat bench-gateway "$moat_pid" "$work/moat.out" "$work/moat.log" 200
}
stop_moat() { kill "$moat_pid"; wait "$moat_pid" 2>/dev/null || true; }

# --- nginx --------------------------------------------------------------------------------
nginx_conf() {  # $1 name, $2 access log (on|off), $3 server block
  local log="access_log off;"
  [ "$2" = on ] && log="access_log $work/$1.access.log;"
  cat >"$work/$1.conf" <<EOF
worker_processes 1;
pid $work/$1.pid;
error_log $work/$1.error.log;
events { worker_connections 65536; }
http {
  $log
  client_body_temp_path $work/$1.body; proxy_temp_path $work/$1.proxy;
  fastcgi_temp_path $work/$1.fcgi; uwsgi_temp_path $work/$1.uwsgi; scgi_temp_path $work/$1.scgi;
  keepalive_requests 1000000;
  upstream up { server 127.0.0.1:$up_port; keepalive 256; }
  upstream moat_fa { server 127.0.0.1:$fa_port; keepalive 256; }
  $3
}
EOF
}
start_nginx() {  # $1 name, $2 cpu
  taskset -c "$2" nginx -c "$work/$1.conf" -p "$work"
  for _ in $(seq 1 100); do [ -s "$work/$1.pid" ] && break; python3 -c 'import time; time.sleep(0.02)'; done
}
stop_nginx() { nginx -c "$work/$1.conf" -p "$work" -s stop 2>/dev/null || true; rm -f "$work/$1.pid"; }
worker_pid() { pgrep -P "$(cat "$work/$1.pid")" | head -1; }

nginx_conf upstream off "server { listen 127.0.0.1:$up_port; location / { return 200 \"hello from upstream\\n\"; } location = /authz { return 204; } }"
start_nginx upstream 1

start_moat ""
export MOAT_HOME="$work/home" MOAT_API_ENDPOINT="http://127.0.0.1:$api_port" MOAT_CONFIG="$work/cli"
"$moat" run deploy bench --upstream "http://127.0.0.1:$up_port" --region us-central1 \
  --project bench --no-allow-unauthenticated --quiet >/dev/null
url=$("$moat" run services describe bench --region us-central1 --project bench --format='value(uri)')
host=${url#http://}; host=${host%:*}
token=$("$moat" auth print-identity-token --audiences="$url")

proxy_block() {
  echo "server { listen 127.0.0.1:$px_port; location / { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection \"\"; } }"
}

# CPU time (user+system clock ticks) of the given processes: a load-independent cost measure.
hz=$(getconf CLK_TCK)
cpu_ticks() { local t=0 p; for p in $1; do t=$((t + $(awk '{print $14+$15}' "/proc/$p/stat"))); done; echo "$t"; }
run_wrk() {  # $1 url, $2 "pids" of the layer under test, $3.. extra wrk args
             # → "rps p50_ms p99_ms non2xx cpu_us_per_request"
  local url=$1 pids=$2; shift 2
  local c0 c1 out
  c0=$(cpu_ticks "$pids")
  out=$(taskset -c 1 wrk -t1 -c"$conns" -d"$duration" --latency "$@" "$url")
  c1=$(cpu_ticks "$pids")
  echo "$out" | awk -v ticks=$((c1 - c0)) -v hz="$hz" '
    function ms(v) { if (v ~ /us$/) return v/1000; if (v ~ /ms$/) return v+0; if (v ~ /s$/) return v*1000; return v }
    /^ +50%/ {p50=ms($2)} /^ +99%/ {p99=ms($2)} /^Requests\/sec/ {rps=$2} / requests in / {n=$1}
    /Non-2xx/ {bad=$NF} END {printf "%s %.3f %.3f %s %.1f\n", rps, p50, p99, bad+0, n ? ticks*1e6/hz/n : 0}'
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

declare -A results
bench_round() {  # $1 label suffix (logs on|off)
  local logs=$1
  stop_nginx proxy; nginx_conf proxy "$logs" "$(proxy_block)"; start_nginx proxy 0
  stop_nginx authreq; nginx_conf authreq "$logs" "$(authreq_block)"; start_nginx authreq 0
  for r in $(seq 1 "$rounds"); do
    results[direct,$logs]+="$(run_wrk "http://127.0.0.1:$up_port/" "$(worker_pid upstream)" -H "Authorization: Bearer $token")"$'\n'
    results[nginx_proxy_pass,$logs]+="$(run_wrk "http://127.0.0.1:$px_port/" "$(worker_pid proxy)" -H "Authorization: Bearer $token")"$'\n'
    results[nginx_proxy_pass_bare,$logs]+="$(run_wrk "http://127.0.0.1:$px_port/" "$(worker_pid proxy)")"$'\n'
    results[nginx_auth_request,$logs]+="$(run_wrk "http://127.0.0.1:$ar_port/" "$(worker_pid authreq) $moat_pid" -H "Authorization: Bearer $token")"$'\n'
    results[moat,$logs]+="$(run_wrk "http://127.0.0.1:$gw_port/" "$moat_pid" -H "Host: $host" -H "Authorization: Bearer $token")"$'\n'
  done
}

# The auth_request target: Moat's forward-auth listener, asked about the same private service
# (X-Forwarded-Host = its host) with the caller's own Authorization header — the snippet of
# docs/operations.md. nginx would normally send X-Forwarded-Host \$host; here the benchmark's
# clients use 127.0.0.1, so the service's host is set explicitly.
authreq_block() {
  echo "server { listen 127.0.0.1:$ar_port;
    location / { auth_request /_auth; proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection \"\"; }
    location = /_auth { internal; proxy_pass http://moat_fa; proxy_http_version 1.1;
      proxy_set_header Connection \"\"; proxy_set_header X-Forwarded-Host $host;
      proxy_set_header X-Forwarded-Method \$request_method; proxy_set_header X-Forwarded-Uri \$request_uri;
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
      proxy_pass_request_body off; proxy_set_header Content-Length \"\"; } }"
}
# Sanity: every setup answers 200 before measuring.
nginx_conf proxy off "$(proxy_block)"; start_nginx proxy 0
nginx_conf authreq off "$(authreq_block)"; start_nginx authreq 0
check() { local code; code=$(curl -s -o /dev/null -w '%{http_code}' "$@"); [ "$code" = 200 ] || { echo "bench-gateway: $* answered $code" >&2; exit 1; }; }
check "http://127.0.0.1:$px_port/"
check -H "Authorization: Bearer $token" "http://127.0.0.1:$ar_port/"
check -H "Host: $host" -H "Authorization: Bearer $token" "http://127.0.0.1:$gw_port/"
check -H "X-Forwarded-Host: $host" -H "Authorization: Bearer $token" "http://127.0.0.1:$fa_port/"
[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$ar_port/")" = 403 ] || { echo "bench-gateway: auth_request without a token was not refused" >&2; exit 1; }

bench_round on
stop_moat; start_moat "--no-access-log"
bench_round off

# Added latency without queueing: few connections (LAT_CONNS), so the proxies are far from
# saturated and p50/p99 show what each hop adds to a request rather than how long requests
# wait behind each other (the saturated runs above measure throughput). Logs off.
lat_conns=${LAT_CONNS:-4}
declare -A latency
for r in $(seq 1 "$rounds"); do
  latency[direct]+="$(conns=$lat_conns run_wrk "http://127.0.0.1:$up_port/" "$(worker_pid upstream)" -H "Authorization: Bearer $token")"$'\n'
  latency[nginx_proxy_pass]+="$(conns=$lat_conns run_wrk "http://127.0.0.1:$px_port/" "$(worker_pid proxy)" -H "Authorization: Bearer $token")"$'\n'
  latency[moat]+="$(conns=$lat_conns run_wrk "http://127.0.0.1:$gw_port/" "$moat_pid" -H "Host: $host" -H "Authorization: Bearer $token")"$'\n'
done

report() {
  # cpu_us: CPU time per request of the layer under test (direct: the upstream worker;
  # auth_request: the nginx worker plus Moat's forward-auth), median over rounds.
  printf '\n%-22s %-5s %10s %9s %9s %8s %8s %8s\n' setup logs req/s p50_ms p99_ms "vs_pp" "non2xx" cpu_us
  for logs in on off; do
    local pp; pp=$(printf '%s' "${results[nginx_proxy_pass,$logs]}" | awk 'NF{print $1}' | median)
    for s in direct nginx_proxy_pass nginx_proxy_pass_bare nginx_auth_request moat; do
      local data=${results[$s,$logs]}
      local rps p50 p99 bad cpu
      rps=$(printf '%s' "$data" | awk 'NF{print $1}' | median)
      p50=$(printf '%s' "$data" | awk 'NF{print $2}' | median)
      p99=$(printf '%s' "$data" | awk 'NF{print $3}' | median)
      bad=$(printf '%s' "$data" | awk 'NF{s+=$4} END{print s+0}')
      cpu=$(printf '%s' "$data" | awk 'NF{print $5}' | median)
      printf '%-22s %-5s %10.0f %9.2f %9.2f %8.2f %8s %8.1f\n' "$s" "$logs" "$rps" "$p50" "$p99" \
        "$(awk -v a="$rps" -v b="$pp" 'BEGIN{print a/b}')" "$bad" "$cpu"
    done
  done
}
report

# Paired: within each round the proxies ran back to back, so the ratio of one round is less
# exposed to this machine's drifting load than the ratio of medians above.
paired() {
  printf '\npaired, median over rounds of (setup / nginx_proxy_pass in the same round)\n'
  printf '%-22s %-5s %10s %10s\n' setup logs "req/s" "cpu/req"
  for logs in on off; do
    for s in nginx_proxy_pass_bare nginx_auth_request moat; do
      local rps cpu
      rps=$(paste <(printf '%s' "${results[$s,$logs]}" | awk 'NF{print $1}') \
                  <(printf '%s' "${results[nginx_proxy_pass,$logs]}" | awk 'NF{print $1}') |
            awk '{print $1/$2}' | median)
      cpu=$(paste <(printf '%s' "${results[$s,$logs]}" | awk 'NF{print $5}') \
                  <(printf '%s' "${results[nginx_proxy_pass,$logs]}" | awk 'NF{print $5}') |
            awk '{print $1/$2}' | median)
      printf '%-22s %-5s %9.2fx %9.2fx\n' "$s" "$logs" "$rps" "$cpu"
    done
  done
}
paired

printf '\nlatency at low load (%s connections, logs off; medians over rounds)\n' "$lat_conns"
printf '%-20s %9s %9s %13s %13s\n' setup p50_ms p99_ms added_p50_ms added_p99_ms
d50=$(printf '%s' "${latency[direct]}" | awk 'NF{print $2}' | median)
d99=$(printf '%s' "${latency[direct]}" | awk 'NF{print $3}' | median)
for s in direct nginx_proxy_pass moat; do
  p50=$(printf '%s' "${latency[$s]}" | awk 'NF{print $2}' | median)
  p99=$(printf '%s' "${latency[$s]}" | awk 'NF{print $3}' | median)
  printf '%-20s %9.3f %9.3f %13.3f %13.3f\n' "$s" "$p50" "$p99" \
    "$(awk -v a="$p50" -v b="$d50" 'BEGIN{print a-b}')" "$(awk -v a="$p99" -v b="$d99" 'BEGIN{print a-b}')"
done

if [ -n "${PERF_OUT:-}" ]; then
  command -v perf >/dev/null || { echo "bench-gateway: perf is missing" >&2; exit 1; }
  perf record -g -o "$work/perf.data" -p "$moat_pid" -- sleep 4 >/dev/null 2>&1 &
  perf_pid=$!
  run_wrk "http://127.0.0.1:$gw_port/" "$moat_pid" -H "Host: $host" -H "Authorization: Bearer $token" >/dev/null
  wait "$perf_pid" || true
  {
    echo "# by binary (kernel vs user space)"
    perf report -i "$work/perf.data" --no-children --sort dso --stdio -g none 2>/dev/null
    echo "# by function (>= 0.4%)"
    perf report -i "$work/perf.data" --no-children --sort dso,symbol --stdio -g none \
      --percent-limit 0.4 2>/dev/null
  } | grep -v '^$' | sed -E 's/[[:space:]]+-[[:space:]]+-[[:space:]]*$//; s/[[:space:]]+$//' | cut -c1-160 >"$PERF_OUT" || true
  echo "perf profile of moat written to $PERF_OUT"
fi

# --- memory per idle keep-alive connection -------------------------------------------------
idle_rss() {  # $1 pid, $2 port, $3 host header, $4 auth → KiB per connection
  python3 - "$1" "$2" "$3" "$4" "$idle_conns" <<'EOF'
import socket, sys
pid, port, host, auth, n = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5])
def rss():
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"): return int(line.split()[1])
req = f"GET / HTTP/1.1\r\nHost: {host}\r\n" + (f"Authorization: Bearer {auth}\r\n" if auth else "") + "\r\n"
warm = []
for _ in range(50):  # warm caches and pools first
    s = socket.create_connection(("127.0.0.1", port)); s.sendall(req.encode()); s.recv(65536); warm.append(s)
before = rss()
socks = []
for _ in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(req.encode())
    data = b""
    while b"hello from upstream" not in data:
        chunk = s.recv(65536)
        if not chunk: raise SystemExit("connection closed early")
        data += chunk
    socks.append(s)
after = rss()
print(f"{(after - before) / n:.2f} {before} {after}")
EOF
}
echo
echo "memory per idle keep-alive connection ($idle_conns connections, each after one request):"
m=$(idle_rss "$moat_pid" "$gw_port" "$host" "$token")
echo "  moat gateway       $(echo "$m" | awk '{printf "%.2f KiB/conn (RSS %d → %d KiB)", $1, $2, $3}')"
n=$(idle_rss "$(worker_pid proxy)" "$px_port" "localhost" "$token")
echo "  nginx proxy_pass   $(echo "$n" | awk '{printf "%.2f KiB/conn (RSS %d → %d KiB)", $1, $2, $3}')"
