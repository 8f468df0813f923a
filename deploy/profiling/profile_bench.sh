#!/usr/bin/env bash
# Profiles every process of a running `streamrec bench` for a few seconds at one rate: py-spy for the worker's
# event loop and its model host, Java Flight Recorder for the Kafka broker and the Neo4j server. Run it beside
# the bench, then summarise with summarise.py (docs/benchmarks.md, "Where the time goes").
#
#   streamrec bench --dataset rees46 --rates 1000 --duration 60 --out .streamrec/bench 2>&1 | tee .streamrec/bench.log &
#   deploy/profiling/profile_bench.sh .streamrec/bench.log .streamrec/profile 1000
#   python deploy/profiling/summarise.py .streamrec/profile
#
# py-spy samples without pausing the processes (--nonblocking): a pausing sampler slows what it measures.
set -euo pipefail
log=$1 out=$2 rate=$3 seconds=${4:-12}
py_spy=${PY_SPY:-py-spy}
mkdir -p "$out"
out=$(cd "$out" && pwd)  # absolute: the JVMs write their recordings relative to their own folders
until grep -q "at $rate events/s for" "$log"; do sleep 1; done
sleep "${DELAY_S:-35}"  # past the measured workers' start-up (a warm start encodes every item's text)
worker=$(pgrep -f "streamrec worker" | head -1)
model_host=$(pgrep -P "$worker" -f spawn_main | head -1)
kafka=$(pgrep -f "kafka.Kafka" | head -1)
neo4j=$(pgrep -f "CommunityEntryPoint" | head -1)
echo "worker $worker model_host $model_host kafka $kafka neo4j $neo4j" > "$out/pids"
"$py_spy" record --nonblocking -r 100 -d "$seconds" -f raw -o "$out/worker.txt" -p "$worker" > /dev/null 2>&1 &
"$py_spy" record --nonblocking -r 100 -d "$seconds" -f raw -o "$out/model_host.txt" -p "$model_host" > /dev/null 2>&1 &
jcmd "$kafka" JFR.start duration="${seconds}s" filename="$out/kafka.jfr" settings=profile > /dev/null
jcmd "$neo4j" JFR.start duration="${seconds}s" filename="$out/neo4j.jfr" settings=profile > /dev/null
wait
for jvm in kafka neo4j; do  # each recording is written when its duration ends: wait until it reads whole
  for _ in $(seq 30); do jfr summary "$out/$jvm.jfr" > /dev/null 2>&1 && break; sleep 1; done
done
