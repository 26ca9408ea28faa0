#!/usr/bin/env bash
# The seed walkthrough, end to end: Cloud Run's invoker IAM tutorial with `gcloud` replaced by
# `moat`. It is also a test (ctest runs it): every step checks its result and the script exits
# non-zero on the first surprise.
#
# Usage: examples/seed/walkthrough.sh [path/to/moat]
# It starts its own `moat serve` on free loopback ports with a fresh home, and stops it at exit.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
MOAT="${1:-$here/../../build/moat}"
MOAT="$(cd "$(dirname "$MOAT")" && pwd)/$(basename "$MOAT")"
work="$(mktemp -d)"
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

step() { printf '\n== %s\n' "$*"; }
fail() { printf 'FAILED: %s\n' "$*" >&2; exit 1; }
expect_eq() { [ "$1" = "$2" ] || fail "$3: expected [$2], got [$1]"; }
# http_code URL [curl args…] → the status code only
http_code() { local url=$1; shift; curl -s -o /dev/null -w '%{http_code}' "$@" "$url"; }

export MOAT_HOME="$work/home"
export MOAT_CONFIG="$work/config"
unset MOAT_API_ENDPOINT

step "start moat serve"
"$MOAT" serve --gateway-addr 127.0.0.1:0 --api-addr 127.0.0.1:0 >"$work/ready" 2>"$work/server.log" &
server_pid=$!
for _ in $(seq 1 300); do
  [ -s "$work/ready" ] && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.log" >&2; fail "moat serve exited"; }
  sleep 0.1
done
[ -s "$work/ready" ] || fail "moat serve did not become ready"
api=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["api"])' "$work/ready")
export MOAT_API_ENDPOINT="$api"
echo "API at $api; the CLI uses \$MOAT_HOME/admin-key.json (the bootstrap administrator)"

"$MOAT" config set project my-gcp-project
"$MOAT" config set region us-central1

step "1. deploy the Flask echo app as a public service"
url=$("$MOAT" run deploy my-private-api --command "python3 $here/app.py" \
        --allow-unauthenticated --region=us-central1 --project=my-gcp-project \
        --format='value(uri)')
echo "service URL: $url"
out=$(curl -s "$url" -d "Testing public access")
expect_eq "$out" "Hello! You sent: Testing public access" "public call"

step "2. make it private: the same curl gets 403"
"$MOAT" run deploy my-private-api --command "python3 $here/app.py" \
  --no-allow-unauthenticated --region=us-central1 --project=my-gcp-project >/dev/null
expect_eq "$(http_code "$url" -d "Testing public access")" 403 "anonymous call to a private service"

step "3. a service account, granted roles/run.invoker with the seed's exact command"
"$MOAT" iam service-accounts create frontend-runner --project=my-gcp-project
"$MOAT" run services add-iam-policy-binding my-private-api \
  --member="serviceAccount:frontend-runner@my-gcp-project.iam.gserviceaccount.com" \
  --role="roles/run.invoker" --region=us-central1 --project=my-gcp-project
"$MOAT" iam service-accounts keys create "$work/frontend-key.json" \
  --iam-account=frontend-runner@my-gcp-project.iam.gserviceaccount.com

step "4. as that service account, the call succeeds"
"$MOAT" auth activate-service-account --key-file="$work/frontend-key.json"
out=$("$MOAT" run services call my-private-api --region=us-central1 \
        --data='{"message": "Hello from service account"}' --project=my-gcp-project)
expect_eq "$out" 'Hello! You sent: {"message": "Hello from service account"}' "call as frontend-runner"

step "5. as other principals: 403"
"$MOAT" auth activate-service-account --key-file="$MOAT_HOME/admin-key.json" >/dev/null
"$MOAT" iam service-accounts create backend-runner --project=my-gcp-project
"$MOAT" iam service-accounts keys create "$work/backend-key.json" \
  --iam-account=backend-runner@my-gcp-project.iam.gserviceaccount.com
"$MOAT" auth activate-service-account --key-file="$work/backend-key.json"
if out=$("$MOAT" run services call my-private-api --region=us-central1 --data=x 2>&1); then
  fail "backend-runner should be refused, got: $out"
fi
case "$out" in *403*) ;; *) fail "backend-runner: expected a 403, got: $out" ;; esac
"$MOAT" auth activate-service-account --key-file="$MOAT_HOME/admin-key.json" >/dev/null
"$MOAT" iam users create alice@example.com --password-file=<(echo 'correct horse battery')
"$MOAT" auth login alice@example.com --password-file=<(echo 'correct horse battery')
if out=$("$MOAT" run services call my-private-api --region=us-central1 --data=x 2>&1); then
  fail "alice should be refused, got: $out"
fi
case "$out" in *403*) ;; *) fail "alice: expected a 403, got: $out" ;; esac

step "6. allAuthenticatedUsers admits any authenticated caller, not an anonymous one"
"$MOAT" auth activate-service-account --key-file="$MOAT_HOME/admin-key.json" >/dev/null
"$MOAT" run services add-iam-policy-binding my-private-api --member=allAuthenticatedUsers \
  --role=roles/run.invoker >/dev/null
"$MOAT" auth activate-service-account --key-file="$work/backend-key.json" >/dev/null
out=$("$MOAT" run services call my-private-api --data=hi)
expect_eq "$out" "Hello! You sent: hi" "backend-runner via allAuthenticatedUsers"
expect_eq "$(http_code "$url" -d x)" 403 "anonymous call with allAuthenticatedUsers"
"$MOAT" auth activate-service-account --key-file="$MOAT_HOME/admin-key.json" >/dev/null
"$MOAT" run services add-iam-policy-binding my-private-api --member=allUsers \
  --role=roles/run.invoker >/dev/null
expect_eq "$(curl -s "$url" -d open)" "Hello! You sent: open" "anonymous call with allUsers"
"$MOAT" run services remove-iam-policy-binding my-private-api --member=allUsers \
  --role=roles/run.invoker >/dev/null
"$MOAT" run services remove-iam-policy-binding my-private-api --member=allAuthenticatedUsers \
  --role=roles/run.invoker >/dev/null
expect_eq "$(http_code "$url" -d x)" 403 "anonymous call after removing allUsers"

step "7. remove-iam-policy-binding: frontend-runner gets 403 again"
"$MOAT" run services remove-iam-policy-binding my-private-api \
  --member="serviceAccount:frontend-runner@my-gcp-project.iam.gserviceaccount.com" \
  --role="roles/run.invoker" --region=us-central1 --project=my-gcp-project
"$MOAT" auth activate-service-account --key-file="$work/frontend-key.json" >/dev/null
if out=$("$MOAT" run services call my-private-api --data=x 2>&1); then
  fail "frontend-runner should be refused after the binding was removed, got: $out"
fi
case "$out" in *403*) ;; *) fail "expected a 403, got: $out" ;; esac

step "8. a service running as frontend-runner calls the private API with its metadata server"
"$MOAT" auth activate-service-account --key-file="$MOAT_HOME/admin-key.json" >/dev/null
"$MOAT" run services add-iam-policy-binding my-private-api \
  --member="serviceAccount:frontend-runner@my-gcp-project.iam.gserviceaccount.com" \
  --role="roles/run.invoker" >/dev/null
front=$("$MOAT" run deploy frontend --command "python3 $here/frontend.py" \
          --service-account=frontend-runner@my-gcp-project.iam.gserviceaccount.com \
          --set-env-vars="TARGET_URL=$url" --allow-unauthenticated --format='value(uri)')
expect_eq "$(curl -s "$front" -d 'via workload identity')" \
  "backend said: Hello! You sent: via workload identity" "frontend → my-private-api"
"$MOAT" run deploy frontend --command "python3 $here/frontend.py" \
  --service-account=backend-runner@my-gcp-project.iam.gserviceaccount.com \
  --set-env-vars="TARGET_URL=$url" --allow-unauthenticated >/dev/null
expect_eq "$(curl -s "$front" -d x)" "backend refused: 403" "frontend running as backend-runner"

step "9. key rotation: a second key, switch, delete the first; its tokens are refused"
"$MOAT" iam service-accounts keys create "$work/frontend-key-2.json" \
  --iam-account=frontend-runner@my-gcp-project.iam.gserviceaccount.com
old_kid=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["private_key_id"])' "$work/frontend-key.json")
"$MOAT" auth activate-service-account --key-file="$work/frontend-key-2.json" >/dev/null
out=$("$MOAT" run services call my-private-api --data=rotated)
expect_eq "$out" "Hello! You sent: rotated" "call with the new key"
"$MOAT" auth activate-service-account --key-file="$MOAT_HOME/admin-key.json" >/dev/null
"$MOAT" iam service-accounts keys delete "$old_kid" \
  --iam-account=frontend-runner@my-gcp-project.iam.gserviceaccount.com --quiet
"$MOAT" auth activate-service-account --key-file="$work/frontend-key.json" >/dev/null
if out=$("$MOAT" run services call my-private-api --data=x 2>&1); then
  fail "the deleted key still works: $out"
fi
"$MOAT" auth activate-service-account --key-file="$MOAT_HOME/admin-key.json" >/dev/null
"$MOAT" iam service-accounts keys list \
  --iam-account=frontend-runner@my-gcp-project.iam.gserviceaccount.com

printf '\nseed walkthrough: all steps passed\n'
