#!/usr/bin/env bash
# The per-kernel launch floor (suite floor) on a lent GPU machine, from the repository root, twice
# in two processes (run-to-run spread): OUT/<card>-floor.tool-run.json and <card>-floor-repeat.
# Environment: OUT (default /tmp/groundtruth-out), WHEELS (default .gt-whl; "none": packages present),
# PY (default python3), GT_EXTRA (e.g. "--device cpu --tiny --hardware cpu" for a CPU dry run), CARD (default h200).
set -u
OUT=${OUT:-/tmp/groundtruth-out}; CARD=${CARD:-h200}; GT_EXTRA=${GT_EXTRA:-}
mkdir -p "$OUT"
. packages/groundtruth/scripts/device-env.sh
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,clocks.mem --format=csv > "$OUT/smi.txt" 2>&1
for n in "$CARD-floor" "$CARD-floor-repeat"; do
  timeout 120 $PY -m mtap_groundtruth.cli run --suite floor --output "$OUT" --name "$n" --iters 50 --checkpoint-seconds 0 $GT_EXTRA 2>&1 \
    | grep -v '^groundtruth floor' | tee "$OUT/$n.log"
done
$PY - "$OUT" "$CARD" <<'PY'
import json, sys
out, card = sys.argv[1:]
for n in (f"{card}-floor", f"{card}-floor-repeat"):
    try:
        d = json.load(open(f"{out}/{n}.tool-run.json"))
    except OSError as exc:
        print(n, "no document:", exc)
        continue
    for c in d["cases"]:
        m = {x["name"]: x["value"] for x in c["metrics"]}
        t = "median %.3f us p10 %.3f p90 %.3f" % (m["latency"] * 1e3, m["latency_p10"] * 1e3, m["latency_p90"] * 1e3) if m else c["error"]["message"]
        print(n, c["key"], c["status"], t, c["parameters"].get("sm_clock_mhz_after"))
PY
