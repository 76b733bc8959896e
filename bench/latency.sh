#!/usr/bin/env bash
# Fixed-rate latency run: direct-A, the nginx-lua peer (B2A) and credbridge (B2A)
# at several rates, with the fixtures and peers of ../shared/bench, all on
# loopback. Prints p50/p99/p99.9 per target and rate, then credbridge's p99 added
# over direct-A at each rate (bench/latency.awk).
#   bench/latency.sh ./bin/credbridge [rates] [duration]
set -u
BIN=${1:?usage: bench/latency.sh ./bin/credbridge [rates] [duration]}
RATES=${2:-1000,2500,5000}; DUR=${3:-5s}
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/fixtures.sh"
W=$(mktemp -d)
start_fixtures "$W" || exit 1
"$BIN" serve --config "$SHARED/credbridge-bench.yaml" >"$W/cb.log" 2>&1 & CB=$!
trap 'kill $CB 2>/dev/null; stop_fixtures "$W"; sleep 0.3; rm -rf "$W"' EXIT
(cd "$HERE/.." && go build -o "$W/load" ./bench/cmd/credbridge-load) || exit 1
sleep 1
PATCH='{"credential":{"blob":{"access":"LOSZM4YRVLKOY9ABCDEF","secret":"secretKey","status":"Inactive"},"project_id":"731fc6f265cd486d900f16e84c5cb594","type":"ec2","user_id":"07609fb9358010e21f7bc00375"}}'
PUT='{"credential":{"status":"inactive","description":"IAMDescription"}}'
H=(--header "X-Auth-Token: tok-admin-0123456789")
{
"$W/load" --name direct-A --method PUT --url http://127.0.0.1:18081/v3.0/OS-CREDENTIAL/credentials/LOSZM4YRVLKOY9ABCDEF \
  "${H[@]}" --header "Content-Type: application/json;charset=utf8" --body "$PUT" --rates "$RATES" --duration "$DUR"
"$W/load" --name nginx-lua-B2A --method PATCH --url http://127.0.0.1:18091/credentials/LOSZM4YRVLKOY9ABCDEF \
  "${H[@]}" --header "Content-Type: application/json" --body "$PATCH" --rates "$RATES" --duration "$DUR"
"$W/load" --name credbridge-B2A --method PATCH --url http://127.0.0.1:8080/credentials/LOSZM4YRVLKOY9ABCDEF \
  "${H[@]}" --header "Content-Type: application/json" --body "$PATCH" --rates "$RATES" --duration "$DUR"
} | awk -f "$HERE/latency.awk"
