#!/usr/bin/env bash
# Train the temporal GAT on your own events and serve it: a new version in the model folder, promoted, and the
# running worker swapping to it while it runs (no restart).
#
#   examples/train_and_serve.sh my_events.csv [VERSION]
#
# my_events.csv: user_id,item_id,type,ts[,item_text] (as for examples/produce_events.py). VERSION names the new
# checkpoint folder (default: the time now). STREAMREC_MODEL_DIR must be the folder the worker serves from
# (default .streamrec/models); WORKER_URL is the worker's HTTP port (default http://127.0.0.1:9464).
# Changed your mind? `streamrec models rollback` serves the version before it again.
set -euo pipefail
events=${1:?usage: $0 EVENTS_CSV [VERSION]}
version=${2:-$(date -u +%Y%m%d-%H%M%S)}
model_dir=${STREAMREC_MODEL_DIR:-${STREAMREC_HOME:-.streamrec}/models}
worker=${WORKER_URL:-http://127.0.0.1:9464}

# the chronological 70 % trains, the next 15 % early-stops; the checkpoint records its validation MRR
streamrec train --events-csv "$events" --out "$model_dir/$version" --promote --no-progress
streamrec models list

# /readyz names the version a worker serves; it swaps within STREAMREC_MODEL_POLL_S plus the time to
# rebuild its state from the graph
for _ in $(seq 1 180); do
  if curl -s "$worker/readyz" | grep -q "\"model_version_name\": *\"$version\""; then
    echo "the worker at $worker serves $version"
    exit 0
  fi
  sleep 1
done
echo "the worker at $worker does not serve $version after 3 minutes: see its log" >&2
exit 1
