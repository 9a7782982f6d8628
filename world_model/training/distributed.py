"""Process-group setup for training under `torchrun` (NCCL on GPUs, gloo on CPUs).

Without torchrun's environment (WORLD_SIZE unset or 1) everything runs as a single process and
these helpers do nothing.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def active(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def check_device(name: str, flag: str = "run.device", auto: bool = True) -> None:
    """A one-line ValueError naming `flag` unless `name` is a device this machine has (cpu, an
    existing cuda:N, another torch device type), or ``auto`` where the caller resolves it."""
    if auto and name == "auto":
        return
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        choices = "auto, cpu, cuda or cuda:N" if auto else "cpu, cuda or cuda:N"
        raise ValueError(f"{flag}: {name!r} is not a device ({choices})") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"{flag} asks for CUDA, but no CUDA GPU is available")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"{flag}: there is no {device} (this machine has {torch.cuda.device_count()} GPUs)")


def pick_device(name: str, local_rank: int = 0) -> torch.device:
    """``auto`` -> this process's GPU if CUDA is available, else the CPU (`name` is run.device)."""
    check_device(name)
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda":
        if device.index is None:
            device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    return device


def init_distributed(device_name: str) -> tuple[DistContext, torch.device]:
    """Join torchrun's process group (if launched by it) and pick this process's device."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(device_name, local_rank)
    if world_size <= 1:
        return DistContext(), device
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return DistContext(dist.get_rank(), dist.get_world_size(), local_rank), device


def mean_across(values: torch.Tensor, context: DistContext) -> torch.Tensor:
    """Average a tensor over all ranks (identity for one process)."""
    if context.active:
        values = values.clone()
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
        values /= context.world_size
    return values


def gather_objects(value, context: DistContext) -> list:
    """Every rank's `value`, in rank order (``[value]`` for one process)."""
    if not context.active:
        return [value]
    out = [None] * context.world_size
    dist.all_gather_object(out, value)
    return out


def barrier(context: DistContext) -> None:
    if context.active:
        dist.barrier()


def shutdown(context: DistContext) -> None:
    if context.active and dist.is_initialized():
        dist.destroy_process_group()
