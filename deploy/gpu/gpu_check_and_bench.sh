#!/usr/bin/env bash
# The GPU path in one command: the CUDA path's correctness (streamrec gpu-check) and its throughput (streamrec
# bench-refresh at 100k/1M/10M edges, micro-batches of 1/100/1,000/10,000, refresh + top-K, top-K over 1M items
# for 10k users, float32 vs bf16, GPU memory). Run from the repository root:
#
#   deploy/gpu/gpu_check_and_bench.sh                                   # on the GPU machine (about 5-8 minutes)
#   DEVICE=cpu SIZES=100000 QUICK=1 deploy/gpu/gpu_check_and_bench.sh   # the same steps on a CPU, small (the proof)
#
# Everything lands in $OUT (default ./gpu-out): gpu_check_and_bench.log, environment.txt, gpu_check.json, bench_refresh.json,
# bench_refresh.png, trained_on_device.tar (the checkpoint trained on the device, to load elsewhere) and
# summary.txt. Each step runs under its own time limit; a step that fails or runs out of time is reported and
# the next one still runs; the exit status is the number of failed steps.
#
# Python: $PYTHON if set; else a python3 that already holds torch and torch_geometric (a GPU image: nothing is
# installed, the repository runs from its folder through PYTHONPATH); else a new virtualenv with
# torch==2.13.0 and the project installed into it (needs a reachable package index; INSTALL=no skips it).
# orjson (imported by stream/events.py) comes from a wheel in .whl/ when carried there, else a json shim.
# On the device tool: run `bash deploy/gpu/gpu_check_and_bench.sh` with carry [".whl", "data"] (both ignored by git):
#   .whl/orjson-3.13.0-cp312-*.whl (pip download --python-version 3.12 ... orjson==3.13.0) and
#   data/jodie_wikipedia/ (a copy of the data folder's JODIE Wikipedia, 0.8 MB).
set -u
cd "$(dirname "$0")/../.."
REPO=$PWD
OUT=${OUT:-$REPO/gpu-out}
DEVICE=${DEVICE:-cuda}
WORK=${WORK:-$REPO/.streamrec/gpu-work}  # scratch: the venv, STREAMREC_HOME, gpu-check's folder (git-ignored)
mkdir -p "$OUT" "$WORK"
OUT=$(cd "$OUT" && pwd)
LOG=$OUT/gpu_check_and_bench.log
exec > >(tee -a "$LOG") 2>&1
export PYTHONUNBUFFERED=1 STREAMREC_HOME=$WORK/home MPLBACKEND=Agg
# JODIE Wikipedia for the 100k row (as the CPU figures): carried in data/ (ignored by git), else synthetic edges
if [ -z "${STREAMREC_DATA_DIR:-}" ] && [ -f "$REPO/data/jodie_wikipedia/wikipedia_uitl.csv.gz" ]; then
  export STREAMREC_DATA_DIR=$REPO/data
fi

if [ "${QUICK:-0}" = 1 ]; then  # the CPU proof: the same steps, small
  SIZES=${SIZES:-100000}; BATCHES=${BATCHES:-1,100,1000}; EVENTS=${EVENTS:-300}; SERVE_REPEATS=${SERVE_REPEATS:-3}
  TOPK_ITEMS=${TOPK_ITEMS:-100000}; TOPK_USERS=${TOPK_USERS:-1000}; TOPK_CHUNK=${TOPK_CHUNK:-250}
  CHECK_TIME=${CHECK_TIME:-300}; BENCH_TIME=${BENCH_TIME:-900}
else
  SIZES=${SIZES:-100000,1000000,10000000}; BATCHES=${BATCHES:-1,100,1000,10000}; EVENTS=${EVENTS:-1000}
  SERVE_REPEATS=${SERVE_REPEATS:-10}; TOPK_ITEMS=${TOPK_ITEMS:-1000000}; TOPK_USERS=${TOPK_USERS:-10000}
  TOPK_CHUNK=${TOPK_CHUNK:-2048}; CHECK_TIME=${CHECK_TIME:-150}; BENCH_TIME=${BENCH_TIME:-330}
fi
FAILED=()
started=$(date +%s)
say() { echo "[gpu +$(( $(date +%s) - started ))s] $*"; }

# -- Python -------------------------------------------------------------------------------------------------
has_stack() { "$1" -c "import torch, torch_geometric, matplotlib" >/dev/null 2>&1; }
if [ -n "${PYTHON:-}" ]; then
  PY=$PYTHON
elif has_stack python3; then
  PY=python3
  say "python3 already holds torch $(python3 -c 'import torch; print(torch.__version__)'): nothing installed"
elif [ "${INSTALL:-auto}" != no ]; then
  base=$(command -v python3.11 || command -v python3)
  say "installing into $WORK/venv ($base): torch==2.13.0, then the project"
  { "$base" -m venv "$WORK/venv" &&
    "$WORK/venv/bin/python" -m pip install -q --retries 1 --timeout 30 torch==2.13.0 &&
    "$WORK/venv/bin/python" -m pip install -q --retries 1 --timeout 30 -e "$REPO"; } || FAILED+=("install")
  PY=$WORK/venv/bin/python
else
  PY=python3
fi
SITE=$WORK/site
mkdir -p "$SITE"
if ! "$PY" -c "import orjson" >/dev/null 2>&1; then
  if ls "$REPO"/.whl/orjson-*.whl >/dev/null 2>&1 &&
     "$PY" -m pip install -q --no-index --no-deps --no-compile --target "$SITE" "$REPO"/.whl/orjson-*.whl; then
    say "orjson from the carried wheel"
  else
    say "orjson missing: a json shim stands in (event parsing is not on the measured path)"
    cat > "$SITE/orjson.py" <<'EOF'
"""Stand-in for orjson on a machine without it (gpu_check_and_bench.sh): the json module, bytes out."""
import json
JSONDecodeError = json.JSONDecodeError
OPT_SORT_KEYS = OPT_NON_STR_KEYS = OPT_SERIALIZE_NUMPY = OPT_APPEND_NEWLINE = 0
def loads(data):
    return json.loads(data)
def dumps(obj, default=None, option=0):
    return json.dumps(obj, default=default, separators=(",", ":"), ensure_ascii=False).encode()
EOF
  fi
fi
export PYTHONPATH=$REPO:$SITE${PYTHONPATH:+:$PYTHONPATH}
SR=("$PY" -m streamrec.tools.cli)  # the streamrec command, from this folder

# -- environment --------------------------------------------------------------------------------------------
{
  echo "date: $(date -u +%FT%TZ)"
  echo "commit: $(git -C "$REPO" rev-parse HEAD 2>/dev/null || echo unknown)"
  "$PY" -c "import platform, torch; print('python', platform.python_version(), '| torch', torch.__version__,
'| cuda', torch.version.cuda, '| cuda available', torch.cuda.is_available(),
'|', torch.cuda.get_device_name() if torch.cuda.is_available() else 'no GPU')"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "nvidia-smi: none"
  nproc
} > "$OUT/environment.txt" 2>&1
cat "$OUT/environment.txt"
if [ "$DEVICE" = cuda ] && ! "$PY" -c "import torch, sys; sys.exit(not torch.cuda.is_available())"; then
  say "torch sees no CUDA device: the cuda steps will fail (DEVICE=cpu runs them on the CPU)"
fi

step() {  # step NAME SECONDS COMMAND...: runs it under a time limit, records a failure, carries on
  local name=$1 limit=$2; shift 2
  say "== $name (limit ${limit}s)"
  timeout --signal=INT --kill-after=20 "$limit" "$@"
  local rc=$?
  if [ $rc -ne 0 ]; then FAILED+=("$name (exit $rc$([ $rc -eq 124 ] && echo ', out of time'))"); fi
  say "== $name: exit $rc"
}

# -- 1. correctness -----------------------------------------------------------------------------------------
step gpu-check "$CHECK_TIME" "${SR[@]}" gpu-check --device "$DEVICE" --out "$WORK/check"
[ -f "$WORK/check/gpu_check.json" ] && cp "$WORK/check/gpu_check.json" "$OUT/"
[ -d "$WORK/check/trained-on-device" ] && tar -C "$WORK/check" -cf "$OUT/trained_on_device.tar" trained-on-device

# -- 2. throughput (the report is rewritten after each size: a run cut short keeps the sizes it finished) -------
step bench-refresh "$BENCH_TIME" "${SR[@]}" bench-refresh --device "$DEVICE" --out "$OUT" --scales "$SIZES" \
  --batch-sizes "$BATCHES" --events "$EVENTS" --min-batches 3 --serve-batch 1000 --serve-repeats "$SERVE_REPEATS" \
  --dtype both --topk-items "$TOPK_ITEMS" --topk-users "$TOPK_USERS" --topk-chunk "$TOPK_CHUNK" --k 20

# -- summary ------------------------------------------------------------------------------------------------
"$PY" - "$OUT" > "$OUT/summary.txt" 2>&1 <<'EOF'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
check = out / "gpu_check.json"
if check.exists():
    r = json.loads(check.read_text())
    print(f"gpu-check on {r.get('device_name')} (torch {r.get('torch')}): {'PASSED' if r.get('passed') else 'FAILED'}")
    for c in r.get("checks", []):
        print(f"  {'ok  ' if c['passed'] else 'FAIL'} {c['name']}: {c['value']} (<= {c['threshold']})"
              + (f" {c['error']}" if c.get("error") else ""))
bench = out / "bench_refresh.json"
if bench.exists():
    r = json.loads(bench.read_text())
    print(f"bench-refresh on {r.get('device_name')}:")
    for t in r.get("topk", []):
        print(f"  top-{t['k']} over {t['items']:,} items for {t['users']:,} users ({t['dtype']}): {t['seconds']*1000:.1f} ms"
              + (f", overlap with float32 {t['top20_overlap_vs_float32']}" if "top20_overlap_vs_float32" in t else "")
              + (f", GPU memory {t['gpu_max_memory_allocated_bytes']/2**30:.2f} GiB" if "gpu_max_memory_allocated_bytes" in t else ""))
    for row in r.get("results", []):
        print(f"  {row['edges']:,} edges, {row['nodes']:,} nodes: full recompute {row['full_recompute_s']*1000:.1f} ms "
              f"= {row['full_node_embeddings_per_s']:,} node embeddings/s"
              + (f", GPU memory {row['gpu_max_memory_allocated_bytes']/2**30:.2f} GiB" if "gpu_max_memory_allocated_bytes" in row else ""))
        for b in row["micro_batches"]:
            print(f"    batch {b['batch_size']:>6,}: {b['micro_batch_s_median']*1000:8.2f} ms per batch (median), "
                  f"{b['node_embeddings_per_s']:,} node embeddings/s, {b['ratio']:,}x cheaper per event than full")
        if "serve" in row:
            s = row["serve"]
            print(f"    1,000-event refresh + top-{s['k']} for {s['users_median']} users: {s['total_s_median']*1000:.2f} ms "
                  f"(observe {s['observe_s_median']*1000:.2f} + top-K {s['top_k_s_median']*1000:.2f}); goal < 5 ms at 1M edges")
        if "bf16" in row:
            b = row["bf16"]
            print(f"    bf16: full recompute {b['full_recompute_s']*1000:.1f} ms ({b['speedup']}x float32), "
                  f"top-20 overlap {b['top20_overlap']}, identical lists {b['top20_identical_lists']}, "
                  f"max |Δ| {b['max_abs_error']}" + (f"; bf16 serve: {b['serve']['error']}" if b.get('serve') and 'error' in b['serve'] else ""))
EOF
cat "$OUT/summary.txt"
say "done in $(( $(date +%s) - started )) s; files in $OUT: $(cd "$OUT" && ls | tr '\n' ' ')"
if [ ${#FAILED[@]} -gt 0 ]; then
  say "FAILED: ${FAILED[*]}"
else
  say "all steps passed"
fi
exit ${#FAILED[@]}
