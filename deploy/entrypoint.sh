#!/bin/sh
# A LayerMesh node in one container: containerd in the background, then meshd, with the container's
# arguments, as the main process (compose's `init: true` reaps and forwards signals).
set -eu

config=/etc/containerd/config.toml
socket=/run/containerd/containerd.sock
log=/var/log/containerd.log

containerd --config "$config" >"$log" 2>&1 &
containerd_pid=$!

# meshd with --store containerd fails at once when containerd does not answer yet: wait for it (30 s at most).
tries=0
until ctr --address "$socket" version >/dev/null 2>&1; do
  if ! kill -0 "$containerd_pid" 2>/dev/null; then
    echo "entrypoint: containerd exited; the end of $log:" >&2
    tail -n 30 "$log" >&2
    exit 1
  fi
  tries=$((tries + 1))
  if [ "$tries" -ge 300 ]; then
    echo "entrypoint: containerd did not answer on $socket within 30 s; the end of $log:" >&2
    tail -n 30 "$log" >&2
    exit 1
  fi
  sleep 0.1
done

exec meshd "$@"
