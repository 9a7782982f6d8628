"""The fast-path variants that the GPU suite times against the plain planner and encoder.

Each is a way of running the unchanged model that the planner could adopt if it measures faster:

* `CompiledRollout`: the CEM iteration's model work (the batched rollout of every candidate, which
  is all but a sliver of its FLOPs) through `torch.compile`, optionally with CUDA graphs
  (``mode="reduce-overhead"``), so kernel launches and Python overhead leave the loop. It wraps a
  `WorldModel` without copying its weights, so the plain and compiled rows share one model.
* `sdpa_math`: attention forced onto SDPA's unfused math path, the reference that shows what
  the fused kernels (flash / memory-efficient, chosen by default) are worth.

Nothing here changes planner/ or world_model/: a variant becomes the default only after it has
measured faster on the GPU and been tested equal.
"""
from __future__ import annotations

from contextlib import contextmanager

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel


class CompiledRollout:
    """`model` with `rollout` compiled; every other attribute is the model's own.

    It is deliberately not a `WorldModel`, so `planner.planning_model` plans with it as it is
    (no RoPE folding): the compiled and the plain rows then run the same arithmetic.
    """

    def __init__(self, model, mode: str | None = None, backend: str = "inductor"):
        self.model = model
        self.mode = mode
        self.rollout = torch.compile(model.rollout, mode=mode, backend=backend, dynamic=False)

    def __getattr__(self, name):
        return getattr(self.model, name)


@contextmanager
def sdpa_math():
    """Inside: every `scaled_dot_product_attention` call takes the unfused math kernel."""
    with sdpa_kernel([SDPBackend.MATH]):
        yield


def reset_compiled() -> None:
    """Drop compiled graphs (and CUDA-graph memory pools) so later rows start from a clean device."""
    torch.compiler.reset()
