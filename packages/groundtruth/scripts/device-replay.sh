#!/usr/bin/env bash
# Suite replay (VIDUR's batches on the GPU) on a lent GPU machine, from the repository root.
# Environment: OUT (default /tmp/groundtruth-out), PLAN (default data/evaluation/vidur/replay/batch-plan.json),
# NAME (default h200-vidur-replay), BUDGET (seconds of measuring, default 450: compositions not started
# by then stay out of the document; `vidur-runner batches --skip-measured DOC` plans the rest for the next
# call), WHEELS (default .gt-whl), PY (default python3), GT_EXTRA (e.g. "--device cpu --tiny --hardware cpu"
# for a CPU dry run). Writes OUT/NAME.tool-run.json (a checkpoint every 30 s) and OUT/NAME.log.
set -u
OUT=${OUT:-/tmp/groundtruth-out}; GT_EXTRA=${GT_EXTRA:-}
PLAN=${PLAN:-data/evaluation/vidur/replay/batch-plan.json}; NAME=${NAME:-h200-vidur-replay}
BUDGET=${BUDGET:-450}
mkdir -p "$OUT"
. packages/groundtruth/scripts/device-env.sh
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,clocks.mem --format=csv > "$OUT/smi.txt" 2>&1
$PY -m mtap_groundtruth.cli run --suite replay --plan "$PLAN" --output "$OUT" --name "$NAME" --time-budget "$BUDGET" \
  $GT_EXTRA 2>&1 | grep -v '^groundtruth replay' | tee "$OUT/$NAME.log"
$PY - "$OUT/$NAME.tool-run.json" <<'PY'
import json, sys
try:
    d = json.load(open(sys.argv[1]))
except OSError as exc:
    sys.exit(f"no document: {exc}")
st = {}
for c in d["cases"]:
    st[c["status"]] = st.get(c["status"], 0) + 1
print("cases", st)
for c in d["cases"][:5] + [c for c in d["cases"] if c["status"] != "ok"][:3]:
    m = {(x["name"], x.get("timing")): x["value"] for x in c["metrics"]}
    print(c["key"], c["status"], m.get(("latency", "device")), m.get(("latency", "eager-end-to-end")),
          c["parameters"].get("host_enqueue_ms"), (c["error"] or {}).get("message"))
PY
