"""What the measurements ran on: GPU name, count, driver, clocks; torch/CUDA/cuDNN/NCCL versions."""

from __future__ import annotations

import importlib.metadata
import shutil
import subprocess
from typing import Any

import torch

SMI_FIELDS = ("name", "driver_version", "memory.total", "clocks.sm", "clocks.max.sm", "clocks.mem")


def _num(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def nvidia_smi() -> list[dict[str, str]]:
    """One dict per GPU from ``nvidia-smi --query-gpu``; empty when nvidia-smi is absent."""
    exe = shutil.which("nvidia-smi")
    if not exe:
        return []
    try:
        out = subprocess.run([exe, f"--query-gpu={','.join(SMI_FIELDS)}", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    rows = []
    for line in out.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == len(SMI_FIELDS):
            rows.append(dict(zip(SMI_FIELDS, parts)))
    return rows


def gpu_info(device: torch.device, used: int = 1) -> dict[str, Any] | None:
    """The tool-run ``environment.gpu`` object (``count`` = GPUs this run used), or None on CPU."""
    if device.type != "cuda":
        return None
    smi = nvidia_smi()
    first = smi[0] if smi else {}
    props = torch.cuda.get_device_properties(device)
    return {
        "name": torch.cuda.get_device_name(device),
        "count": used,
        "driver_version": first.get("driver_version"),
        "cuda_version": torch.version.cuda,
        "memory_mib": _num(first.get("memory.total", "")) or round(props.total_memory / 2**20, 1),
        "sm_clock_mhz": _num(first.get("clocks.sm", "")),
        "max_sm_clock_mhz": _num(first.get("clocks.max.sm", "")),
        "memory_clock_mhz": _num(first.get("clocks.mem", "")),
    }


def packages(device: torch.device) -> dict[str, str]:
    out = {"torch": str(torch.__version__)}
    if torch.version.cuda:
        out["cuda"] = str(torch.version.cuda)
    if device.type == "cuda":
        cudnn = torch.backends.cudnn.version()
        if cudnn:
            out["cudnn"] = str(cudnn)
        try:
            out["nccl"] = ".".join(map(str, torch.cuda.nccl.version()))
        except Exception:  # noqa: BLE001 - NCCL missing from this build
            pass
    for dist_name in ("numpy", "transformers"):
        try:
            out[dist_name] = importlib.metadata.version(dist_name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return out


#: (substring of the CUDA device name, single-GPU id, multi-GPU id) from data/hardware/hardware.json.
#: Order matters: the first match wins. A GPU matching none has no default id (the CLI then
#: refuses to guess: a measurement is filed under the hardware it ran on, never a neighbour's).
CARDS = (
    ("H200", "H200-SXM-141GB", "HGX-H200x8"),
    ("H100", "H100-SXM5-80GB", "HGX-H100x8"),
    ("A100-SXM4-80GB", "A100-SXM4-80GB", None),
)


def hardware_for(gpu_name: str, suite: str) -> str | None:
    """Catalog id for a GPU named ``gpu_name``: the card's single-GPU id, or its HGX node id
    for the multi suite; None when the catalog has no such card."""
    if any(form in gpu_name for form in ("PCIe", "NVL")):  # other boards of the same chip: other clocks and memory
        return None
    for needle, single, multi in CARDS:
        if needle in gpu_name:
            return multi if suite == "multi" else single
    return None


def default_hardware(device: torch.device, suite: str) -> str | None:
    """Catalog id for the device (:func:`hardware_for`), ``cpu`` for CPU runs, None for a GPU
    the catalog has no id for."""
    if device.type != "cuda":
        return "cpu"
    return hardware_for(torch.cuda.get_device_name(device), suite)
