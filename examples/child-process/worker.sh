#!/usr/bin/env bash
# The very important process: prints its term until told to stop.
trap 'echo "worker $VIP_ID: SIGTERM, cleaning up"; exit 0' TERM
while true; do
  echo "worker $VIP_ID: working (token $VIP_TOKEN)"
  sleep 1
done
