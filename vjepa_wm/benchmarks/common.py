"""Timing, the reference matmul rate, and table/JSON output shared by all benchmarks."""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable

import torch

from vjepa_wm.world_model.training.distributed import check_device


def pick_device(name: str = "auto") -> torch.device:
    """The --device of a command: ``auto`` is a GPU if there is one; anything else must exist here."""
    check_device(name, "--device")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def runnable(names: list[str], configs: dict, device: torch.device, what: str) -> list[str]:
    """The asked-for configurations this device can run: an unknown name is an error, a GPU-only
    configuration on a CPU is skipped with a line saying so."""
    unknown = [n for n in names if n not in configs]
    if unknown:
        raise ValueError(f"unknown {what} benchmark {unknown[0]!r}; choose from {', '.join(configs)}")
    for name in names:
        if configs[name].gpu_only and device.type != "cuda":
            print(f"skipping {name}: it needs a GPU (the published model is far too slow on a CPU)")
    return [n for n in names if device.type == "cuda" or not configs[n].gpu_only]


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_call(fn: Callable[[], object], device: torch.device, repeats: int = 3, warmup: int = 1) -> float:
    """Median wall seconds of `fn` over `repeats` runs after `warmup` runs."""
    for _ in range(warmup):
        fn()
    synchronize(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    times.sort()
    return times[len(times) // 2]


def matmul_rate(device: torch.device, dtype: torch.dtype | None = None, size: int | None = None, repeats: int = 5) -> float:
    """FLOP/s of a dense square matmul: bf16 on a GPU, fp32 on a CPU, unless `dtype` says otherwise."""
    dtype = dtype or (torch.bfloat16 if device.type == "cuda" else torch.float32)
    size = size or (8192 if device.type == "cuda" else 1024)
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    seconds = time_call(lambda: a @ b, device, repeats=repeats, warmup=2)
    return 2.0 * size**3 / seconds


def peak_memory_gib(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    return torch.cuda.max_memory_allocated(device) / 2**30


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    import platform

    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def format_value(value) -> str:
    if isinstance(value, float):
        if value == 0 or 1e-3 <= abs(value) < 1e5:
            return f"{value:.4g}"
        return f"{value:.3e}"
    return "-" if value is None else str(value)


def print_table(records: list[dict], columns: list[str]) -> str:
    """Print `records` as an aligned text table (and return it)."""
    cells = [[format_value(r.get(c)) for c in columns] for r in records]
    widths = [max(len(c), *(len(row[i]) for row in cells)) if cells else len(c) for i, c in enumerate(columns)]
    lines = [" | ".join(c.ljust(w) for c, w in zip(columns, widths)), "-+-".join("-" * w for w in widths)]
    lines += [" | ".join(v.ljust(w) for v, w in zip(row, widths)) for row in cells]
    text = "\n".join(lines)
    print(text)
    return text


def write_json(path: str | Path | None, records: list[dict] | dict) -> None:
    """The figures a command printed, as JSON at `path` (--json); nothing without a path."""
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(records, indent=2) + "\n")
