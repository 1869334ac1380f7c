#!/usr/bin/env bash
# W5's serving trace on a lent GPU machine (issue 26), from the repository root:
#   serving-groundtruth run --trace data/workloads/serving/w5-serving-trace.json --repeat qps4
#   -> OUT/<card>-serving.tool-run.json, OUT/raw.tar (raw/<card>-<point>.json.xz: per request and per engine step;
#      one tar, as the device tool returns at most 8 files)
# <card> is h100 or h200, from the GPU found. The GPU image's own transformers (5.17.0) is the engine; only
# mtap-schemas' dependencies are installed from WHEELS (default .whl; transformers/tokenizers/huggingface_hub
# wheels there, for the eager suite, are left out so they cannot shadow it).
# Environment: OUT (default /tmp/serving-out), SERVE_BUDGET (seconds, default 320: points that would not fit
# are left for --resume), POINTS (comma-separated point ids, in order; default: the trace's), RESUME_DIR (an earlier call's OUT: its checkpoint is copied in and the run resumed).
set -u
OUT=${OUT:-/tmp/serving-out}; SERVE_BUDGET=${SERVE_BUDGET:-320}; WHEELS=${WHEELS:-.whl}
mkdir -p "$OUT/raw"
site=/tmp/sg-site
wheels=$(ls "$WHEELS"/*.whl 2>/dev/null | grep -v -E '/(transformers|tokenizers|huggingface_hub)-')
if [ -n "$wheels" ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" $wheels || exit 9
fi
export PYTHONPATH=$site:schemas/src:packages/serving-groundtruth/src
export PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
python3 -c "import torch, transformers; print('torch', torch.__version__, torch.cuda.get_device_name(0), 'transformers', transformers.__version__)"
card=$(python3 -c "import torch; n=torch.cuda.get_device_name(0); print('h200' if 'H200' in n else 'h100' if 'H100' in n else '')")
[ -n "$card" ] || { echo "device-serving: not an H100 or H200; nothing measured" >&2; exit 2; }
resume=(); points=(); [ -n "${POINTS:-}" ] && points=(--points "$POINTS")
if [ -n "${RESUME_DIR:-}" ] && [ -f "$RESUME_DIR/.$card-serving.progress.jsonl" ]; then
  cp "$RESUME_DIR/.$card-serving.progress.jsonl" "$OUT/"; resume=(--resume)
  if [ -f "$RESUME_DIR/raw.tar" ]; then tar -C "$OUT" -xf "$RESUME_DIR/raw.tar"; else cp "$RESUME_DIR"/raw/*.json.xz "$OUT/raw/" 2>/dev/null; fi
fi
timeout --signal=INT $(( ${SERVE_BUDGET%.*} + 60 )) python3 -m mtap_serving_groundtruth.cli run \
  --trace data/workloads/serving/w5-serving-trace.json --repeat qps4 --output "$OUT" --name "$card-serving" \
  --keep-raw "$OUT/raw" --time-budget "$SERVE_BUDGET" "${points[@]}" "${resume[@]}" 2>&1 | tee "$OUT/$card-serving.log" | grep -v '^points'
nvidia-smi --query-gpu=name,clocks.sm,clocks.mem,temperature.gpu,power.draw --format=csv >> "$OUT/$card-serving.log" 2>&1
tar -C "$OUT" -cf "$OUT/raw.tar" raw && rm -r "$OUT/raw"
