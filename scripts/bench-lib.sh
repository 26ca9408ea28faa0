# Shared by the benchmark scripts (sourced, not run).

# A free loopback TCP port. Ports asked for one by one may repeat: callers that need several
# at once bind them together instead (see bench-gateway.sh).
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# Waits until `moat serve` (PID $2, stdout in $3, stderr in $4) reports its gateway listening,
# polling every 50 ms up to $5 times; exits with its log when it died or never got there.
# $1 names the calling script in the message.
wait_for_moat() {
  local name=$1 pid=$2 out=$3 log=$4 tries=$5
  for _ in $(seq 1 "$tries"); do
    grep -q '"gateway"' "$out" 2>/dev/null && return 0
    kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; exit 1; }
    python3 -c 'import time; time.sleep(0.05)'
  done
  echo "$name: moat did not start" >&2
  exit 1
}
