#!/usr/bin/env bash
# Same-run A/B of two moat builds against nginx proxy_pass: what a change costs or saves per
# request, measured side by side because these machines' load drifts between runs.
#
#   scripts/bench-ab.sh MOAT_A MOAT_B [ROUNDS]      (default 6 rounds; needs wrk and nginx)
#
# One upstream (nginx, 1 worker, `return 200`, CPU 1), nginx proxy_pass (1 worker, CPU 0),
# and each moat (`serve --threads 1 [--no-access-log]`, a private service fronting the upstream,
# called with a valid ID token; CPU 0). Every round runs wrk (1 thread, C connections,
# D seconds, CPU 1) against nginx, A and B in turn. Per run: p99, req/s, and the CPU time of
# the layer under test per request (total, user, system) and of the upstream's worker, from
# /proc/PID/stat; then the means.
# Environment: C (64), D (4s), LOGS (off; on: nginx's access_log and Moat's access log both go
# to files).
set -euo pipefail
[ $# -ge 2 ] || { sed -n 2,12p "$0" >&2; exit 2; }
A=$(realpath "$1"); B=$(realpath "$2"); R=${3:-6}
for tool in wrk nginx python3 taskset; do
  command -v "$tool" >/dev/null || { echo "bench-ab: $tool is missing" >&2; exit 1; }
done
w=$(mktemp -d /tmp/moat-ab.XXXXXX)
declare -A PID GWP HOSTH TOK
cleanup() {
  for n in A B; do [ -n "${PID[$n]:-}" ] && kill "${PID[$n]}" 2>/dev/null || true; done
  for c in up px; do [ -f "$w/$c.pid" ] && kill "$(cat "$w/$c.pid")" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$w"
}
trap cleanup EXIT
ulimit -n "$(ulimit -Hn)"
logs=${LOGS:-off}
nginx_log="access_log off;"; moat_log="--no-access-log"
[ "$logs" = on ] && { nginx_log="access_log $w/px.access.log;"; moat_log=""; }
source "$(dirname "$0")/bench-lib.sh"
UP=$(free_port); PX=$(free_port)
conf() {  # $1 name, $2 server block, $3 access_log directive
  cat >"$w/$1.conf" <<EOC
worker_processes 1; pid $w/$1.pid; error_log $w/$1.err;
events { worker_connections 65536; }
http { $3 client_body_temp_path $w/$1.b; proxy_temp_path $w/$1.p;
  fastcgi_temp_path $w/$1.f; uwsgi_temp_path $w/$1.u; scgi_temp_path $w/$1.s;
  keepalive_requests 1000000; upstream up { server 127.0.0.1:$UP; keepalive 256; }
  $2 }
EOC
}
conf up "server { listen 127.0.0.1:$UP; location / { return 200 \"hello from upstream\\n\"; } }" "access_log off;"
conf px "server { listen 127.0.0.1:$PX; location / { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection \"\"; } }" "$nginx_log"
taskset -c 1 nginx -c "$w/up.conf" -p "$w" 2>/dev/null
taskset -c 0 nginx -c "$w/px.conf" -p "$w" 2>/dev/null
for n in A B; do
  bin=${!n}; gw=$(free_port); api=$(free_port)
  taskset -c 0 "$bin" serve --home "$w/home$n" --gateway-addr "127.0.0.1:$gw" \
    --api-addr "127.0.0.1:$api" --threads 1 $moat_log >"$w/$n.out" 2>"$w/$n.log" &
  PID[$n]=$!
  wait_for_moat bench-ab "${PID[$n]}" "$w/$n.out" "$w/$n.log" 200
  export MOAT_HOME=$w/home$n MOAT_API_ENDPOINT=http://127.0.0.1:$api MOAT_CONFIG=$w/cli$n
  "$bin" run deploy bench --upstream "http://127.0.0.1:$UP" --region us-central1 --project bench \
    --no-allow-unauthenticated --quiet >/dev/null 2>&1
  url=$("$bin" run services describe bench --region us-central1 --project bench --format='value(uri)')
  h=${url#http://}; HOSTH[$n]=${h%:*}
  TOK[$n]=$("$bin" auth print-identity-token --audiences="$url")
  GWP[$n]=$gw
done
hz=$(getconf CLK_TCK)
one() {  # label pid url [wrk headers…] → "label p99 rps cpu_us user_us sys_us upstream_us"
  local label=$1 pid=$2 url=$3; shift 3
  local u0 s0 u1 s1 up0 up1 out n
  read -r u0 s0 < <(awk '{print $14, $15}' "/proc/$pid/stat")
  up0=$(awk '{print $14 + $15}' "/proc/$uppid/stat")
  out=$(taskset -c 1 wrk -t1 -c"${C:-64}" -d"${D:-4s}" --latency "$@" "$url")
  read -r u1 s1 < <(awk '{print $14, $15}' "/proc/$pid/stat")
  up1=$(awk '{print $14 + $15}' "/proc/$uppid/stat")
  n=$(echo "$out" | awk '/ requests in /{print $1}')
  echo "$label $(echo "$out" | awk '/^ +99%/{printf "%s ", $2} /Requests\/sec/{printf "%d ", $2}')$(awk -v u=$((u1 - u0)) -v s=$((s1 - s0)) -v up=$((up1 - up0)) -v n="$n" -v hz="$hz" 'BEGIN{printf "%.1f %.1f %.1f %.1f", (u+s)*1e6/hz/n, u*1e6/hz/n, s*1e6/hz/n, up*1e6/hz/n}')"
}
pxpid=$(pgrep -P "$(cat "$w/px.pid")")
# The upstream's worker shares CPU 1 with wrk: what it spends per request bounds the req/s of
# every setup, whichever proxy is faster.
uppid=$(pgrep -P "$(cat "$w/up.pid")")
echo "label p99 req/s cpu_us/req user_us sys_us upstream_us/req"
for _ in $(seq 1 "$R"); do
  # The same request as Moat gets (its token too): the upstream and wrk then do the same work
  # per request for both proxies (they share CPU 1).
  one nginx "$pxpid" "http://127.0.0.1:$PX/" -H "Authorization: Bearer ${TOK[A]}"
  for n in A B; do
    one "$n" "${PID[$n]}" "http://127.0.0.1:${GWP[$n]}/" -H "Host: ${HOSTH[$n]}" \
      -H "Authorization: Bearer ${TOK[$n]}"
  done
done | tee "$w/results.txt"
echo "means over $R rounds:"
awk '{rps[$1]+=$3; cpu[$1]+=$4; us[$1]+=$5; sy[$1]+=$6; up[$1]+=$7; k[$1]++}
     END {for (x in rps) printf "%-5s req/s %d  cpu/req %.1f us (user %.1f, sys %.1f)  upstream %.1f us/req\n",
          x, rps[x]/k[x], cpu[x]/k[x], us[x]/k[x], sy[x]/k[x], up[x]/k[x]}' "$w/results.txt" | sort
