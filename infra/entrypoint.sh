#!/bin/sh
# Entry point of the curate image: runs its arguments, first joining the Ray cluster at
# RAY_ADDRESS as a node with no CPUs or GPUs of its own.
#
# Why: Ray Data runs its streaming executor in the driver (the process that runs a flow),
# and that executor needs the driver on a node of the cluster; it does not run over Ray
# Client (ray://host:10001). A driver on a node reaches the cluster with
# RAY_ADDRESS=<head>:6379, and with 0 CPUs and GPUs no task is ever placed here.
# RAY_ADDRESS unset: nothing to join, the flow starts a local Ray cluster.
set -eu

case "${RAY_ADDRESS:-}" in
  "" | auto | local | ray://*) ;;
  *)
    tries=0
    until ray start --address="$RAY_ADDRESS" --num-cpus=0 --num-gpus=0 --disable-usage-stats; do
      tries=$((tries + 1))
      if [ "$tries" -ge 30 ]; then
        echo "curate-entrypoint: no Ray head at $RAY_ADDRESS after $tries tries" >&2
        exit 1
      fi
      sleep 5
    done
    ;;
esac
exec "$@"
