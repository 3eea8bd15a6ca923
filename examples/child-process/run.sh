#!/usr/bin/env bash
# Two `vip run` processes guard worker.sh; the leader is then killed with SIGKILL.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
vip="node $here/../../packages/vip/bin/vip.mjs"
store="${VIP_STORE:-etcd://127.0.0.1:2379}"
path="/examples/child-process-$$"

$vip run --store "$store" --path "$path" --id first --ttl 3 -- bash "$here/worker.sh" & first=$!
sleep 1
$vip run --store "$store" --path "$path" --id second --ttl 3 -- bash "$here/worker.sh" & second=$!
sleep 3
$vip status --store "$store" --path "$path"
leader=$($vip status --store "$store" --path "$path" --json | node -e 'process.stdin.on("data", d => console.log(JSON.parse(d).leader.id))')
if [ "$leader" = first ]; then victim=$first; other=$second; else victim=$second; other=$first; fi
echo "--- kill -9 the leading vip ($leader) ---"
kill -9 "$victim"
sleep 6
$vip status --store "$store" --path "$path"
echo "--- stop the other one gracefully ---"
kill -TERM "$other"
wait "$other" || true
