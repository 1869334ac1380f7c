"""Print a short table of groundtruth documents: key, status, device and eager latency (ms), busbw."""

from __future__ import annotations

import json
import sys


def main(paths: list[str]) -> None:
    for path in paths:
        doc = json.load(open(path, encoding="utf-8"))
        gpu = (doc["environment"].get("gpu") or {})
        print(f"# {path}: {gpu.get('name')} x{gpu.get('count')} driver {gpu.get('driver_version')} torch {doc['environment'].get('packages', {}).get('torch')}")
        for case in doc["cases"]:
            m = {(x["name"], x.get("timing")): x["value"] for x in case["metrics"]}
            dev = m.get(("latency", "device"))
            eag = m.get(("latency", "eager-end-to-end"))
            bus = m.get(("busbw", "device"))
            extra = f" busbw {bus / 1e9:.1f} GB/s" if bus else ""
            err = f" {case['error']['kind']}: {case['error']['message'][:80]}" if case["error"] else ""
            print(f"{case['key']:48s} {case['status']:6s} dev {dev if dev is not None else '-':>10} eager {eag if eag is not None else '-':>10}{extra}{err}")


if __name__ == "__main__":
    main(sys.argv[1:])
