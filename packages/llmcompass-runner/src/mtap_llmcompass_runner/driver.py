"""Runs inside a copy of the LLMCompass checkout (the working directory; LLMCompass reads its
systolic-array look-up tables by relative path and appends to them), in the runner's Python, as
``python driver.py`` with a JSON request on stdin. It does what the authors' scripts do
(ae/figure10/test_latency.py, ae/figure11/test_decoding.py, docs/run.md):

    specs = read_architecture_template(ARCH); system = template_to_system(specs)
    block = TransformerBlockInitComputationTP(d_model, n_heads, device_count, fp16)   # prefill
          | TransformerBlockAutoRegressionTP(d_model, n_heads, device_count, fp16)   # decode
    block(Tensor(...)[, seq_len]); latency = block.compile_and_simulate(system, "heuristic-GPU")

plus, where the measured model has one, the head GEMM (LM head or BERT's pooler) as an LLMCompass
``Matmul`` simulated the same way (+ the device's matmul overhead, as every block matmul gets).
LLMCompass's own prints go to stderr; stdout is one JSON line, what the runner parses.
This file imports nothing of the runner (it runs with only LLMCompass on the path).
"""

from __future__ import annotations

import contextlib
import json
import sys
import time


def main() -> int:
    req = json.loads(sys.stdin.read())
    out: dict = {"seconds": {}}
    t0 = time.monotonic()
    with contextlib.redirect_stdout(sys.stderr):
        from design_space_exploration.dse import read_architecture_template, template_to_system
        from software_model.matmul import Matmul
        from software_model.transformer import TransformerBlockAutoRegressionTP, TransformerBlockInitComputationTP
        from software_model.utils import Tensor, data_type_dict

        out["seconds"]["import"] = round(time.monotonic() - t0, 3)
        dtype = data_type_dict[req["data_type"]]
        system = template_to_system(read_architecture_template(req["arch_file"]))
        device = system.device
        cm = device.compute_module
        out["system"] = {
            "core_count": cm.core_count,
            "clock_freq_hz": cm.clock_freq,
            "l2_size_bytes": cm.l2_size,
            "systolic_array": [
                cm.core.systolic_array.array_height,
                cm.core.systolic_array.array_width,
                cm.core.systolic_array.mac_per_cycle,
            ],
            "systolic_array_count": cm.core.systolic_array_count,
            "total_systolic_array_flops": cm.total_systolic_array_flops,
            "vector_flops_per_cycle_per_core": cm.core.vector_unit.total_vector_flops_per_cycle,
            "io_bandwidth_bytes_per_s": device.io_module.bandwidth,
            "overhead_s": {
                "matmul": cm.overhead.matmul,
                "softmax": cm.overhead.softmax,
                "layernorm": cm.overhead.layernorm,
                "gelu": cm.overhead.gelu,
            },
        }
        d, h, b, s = req["d_model"], req["n_heads"], req["batch"], req["seq"]
        t1 = time.monotonic()
        if req["block"] == "decode":
            block = TransformerBlockAutoRegressionTP(d_model=d, n_heads=h, device_count=1, data_type=dtype)
            block(Tensor([b, 1, d], dtype), s)
        else:
            block = TransformerBlockInitComputationTP(d_model=d, n_heads=h, device_count=1, data_type=dtype)
            block(Tensor([b, s, d], dtype))
        out["block_latency_s"] = block.compile_and_simulate(system, req["compile_mode"])
        out["block_log"] = block.simluate_log
        out["seconds"]["block"] = round(time.monotonic() - t1, 3)
        head = req.get("head")
        if head:
            t2 = time.monotonic()
            mm = Matmul(dtype)
            mm(Tensor([1, head["M"], head["K"]], dtype), Tensor([head["K"], head["N"]], dtype))
            gemm = mm.compile_and_simulate(device, req["compile_mode"])
            out["head_gemm_s"] = gemm
            out["head_latency_s"] = gemm + cm.overhead.matmul
            out["seconds"]["head"] = round(time.monotonic() - t2, 3)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
