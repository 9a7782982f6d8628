"""Step -> value schedules for pretraining: learning rate, context-loss weight, EMA momentum.

Each is a pure function of the global step, so resuming a run only needs the step counter and
every rank computes the same value without communication.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class WarmupConstantCooldown:
    """Linear warmup start_lr -> lr, constant lr, then a linear cooldown to final_lr.

    The V-JEPA 2 / 2.1 primary phase is warmup + constant; the cooldown phase (the anneal run
    of the official recipe) decays linearly over its last `cooldown_steps` steps.
    """

    lr: float
    total_steps: int
    warmup_steps: int = 0
    start_lr: float = 0.0
    cooldown_steps: int = 0
    final_lr: float = 0.0

    def __post_init__(self):
        if self.total_steps < 1:
            raise ValueError(f"total_steps must be positive (got {self.total_steps})")
        if self.warmup_steps < 0 or self.cooldown_steps < 0 or self.warmup_steps + self.cooldown_steps > self.total_steps:
            raise ValueError(
                f"warmup ({self.warmup_steps}) + cooldown ({self.cooldown_steps}) steps must fit in {self.total_steps} steps"
            )

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return self.start_lr + (self.lr - self.start_lr) * (step + 1) / self.warmup_steps
        cooldown_start = self.total_steps - self.cooldown_steps
        if self.cooldown_steps and step >= cooldown_start:
            progress = min(1.0, (step - cooldown_start + 1) / self.cooldown_steps)
            return self.lr + (self.final_lr - self.lr) * progress
        return self.lr


@dataclass(frozen=True)
class LinearWarmupHold:
    """0 before `start`, linear to `value` at `end`, then held (the 2.1 context-loss weight)."""

    value: float
    start: int = 0
    end: int = 0

    def __post_init__(self):
        if self.end < self.start:
            raise ValueError(f"warmup end ({self.end}) is before its start ({self.start})")

    def __call__(self, step: int) -> float:
        if step < self.start:
            return 0.0
        if step >= self.end:
            return self.value
        return self.value * (step - self.start) / (self.end - self.start)


@dataclass(frozen=True)
class LinearRamp:
    """`begin` at step 0 to `end` at `total_steps` (the EMA momentum; constant when equal)."""

    begin: float
    end: float
    total_steps: int

    def __call__(self, step: int) -> float:
        progress = min(1.0, step / max(1, self.total_steps))
        return self.begin + (self.end - self.begin) * progress
