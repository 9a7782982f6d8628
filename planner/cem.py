"""Cross-entropy-method search over action sequences, batched on the world model's device.

The search is the published V-JEPA 2-AC one: Gaussian samples of (dx, dy, dz, gripper) per horizon
step (rotations held at zero unless `search_rotation`), clipped to a per-axis box (xyz +-max_step,
gripper +-0.75), scored by the L1 energy between the last imagined latent and the goal, the top-k
elites refitted with momentum on mean and std (separate momentum for the gripper), and the final
**mean** returned with small gripper values rounded to zero.

Speed: every candidate of an iteration goes through the predictor in one batched pass (with a KV
cache across horizon steps, see `WorldModel.rollout`), under bf16 autocast on a GPU. Inside the
loop nothing waits for the host; the optional early stop reads the previous iteration's elite
energy through an asynchronous copy, so the device queue never drains.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Protocol

import torch


@dataclass
class CEMConfig:
    samples: int = 800
    iterations: int = 10
    horizon: int = 1
    elites: int = 10
    momentum_mean: float = 0.15
    momentum_std: float = 0.15
    momentum_mean_gripper: float = 0.15
    momentum_std_gripper: float = 0.15
    max_step: float = 0.05  # xyz box, metres per step (the paper's 0.075 is also common)
    max_gripper: float = 0.75
    init_std_gripper: float = 1.0
    search_rotation: bool = False  # published: rotations held at zero
    max_rotation: float = 0.1  # rad, only when rotations are searched
    gripper_round: float = 0.25  # |gripper| below this becomes 0 in the returned plan
    early_stop_patience: int = 0  # 0 = off; else stop after this many iterations without improvement
    early_stop_tolerance: float = 1e-3  # relative improvement that counts
    seed: int = 0
    bf16: bool = True  # autocast on CUDA only

    def __post_init__(self):
        if self.samples < 1 or self.iterations < 1 or self.horizon < 1:
            raise ValueError("samples, iterations and horizon must be positive")
        if not 1 <= self.elites <= self.samples:
            raise ValueError(f"elites must be in [1, samples={self.samples}], got {self.elites}")


@dataclass
class Plan:
    actions: torch.Tensor  # [H, 7] the returned sequence (mean, rotations zeroed unless searched, gripper rounded)
    mean: torch.Tensor  # [H, 7] raw search mean (for warm starts)
    std: torch.Tensor  # [H, 7]
    elite_energies: torch.Tensor  # [iterations_run] best elite energy per iteration
    iterations_run: int
    seconds: float
    samples: int = 0

    @property
    def first_action(self) -> torch.Tensor:
        return self.actions[0]

    @property
    def energy(self) -> float:
        return float(self.elite_energies[-1])

    def shifted(self) -> "Plan":
        """The plan one step later: drop the executed step, repeat the last one (the warm start)."""
        mean = torch.cat([self.mean[1:], self.mean[-1:]])
        std = torch.cat([self.std[1:], self.std[-1:]])
        return Plan(self.actions, mean, std, self.elite_energies, self.iterations_run, self.seconds, self.samples)


class Rollable(Protocol):
    def rollout(self, z, state, actions, cache=None): ...


ScoreFn = Callable[[torch.Tensor], torch.Tensor]


def world_model_score(world_model, z: torch.Tensor, state: torch.Tensor, z_goal: torch.Tensor, cache=None) -> ScoreFn:
    """Energy of each candidate sequence ``[S, H, 7]``: L1 between its last imagined latent and the goal."""

    def score(actions: torch.Tensor) -> torch.Tensor:
        latents = world_model.rollout(z, state, actions, cache=cache.expand(actions.shape[0]) if cache else None).latents
        return (latents[:, -1].float() - z_goal.float()).abs().flatten(1).mean(1)

    return score


class CEM:
    """One planner instance per device; `search` is called once per control step."""

    def __init__(self, config: CEMConfig, device: torch.device | str = "cpu"):
        self.config = config
        self.device = torch.device(device)
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(config.seed)
        c = config
        dims = torch.zeros(7, dtype=torch.bool)
        dims[[0, 1, 2, 6]] = True
        if c.search_rotation:
            dims[3:6] = True
        self.searched = dims.to(self.device)
        self.low = torch.tensor([-c.max_step] * 3 + [-c.max_rotation] * 3 + [-c.max_gripper], device=self.device)
        self.high = -self.low
        self.gripper = torch.zeros(7, dtype=torch.bool, device=self.device)
        self.gripper[6] = True

    def initial(self) -> tuple[torch.Tensor, torch.Tensor]:
        c = self.config
        mean = torch.zeros(c.horizon, 7, device=self.device)
        std = torch.tensor([c.max_step] * 3 + [c.max_rotation] * 3 + [c.init_std_gripper], device=self.device)
        return mean, (std * self.searched).expand(c.horizon, 7).clone()

    def sample(self, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
        c = self.config
        noise = torch.randn(c.samples, c.horizon, 7, device=self.device, generator=self.generator)
        actions = (mean + std * noise).clamp(self.low, self.high)
        return actions * self.searched  # unsearched dimensions are exactly zero

    def search(self, score: ScoreFn, warm_start: Plan | None = None) -> Plan:
        """Run the CEM iterations; `score` maps ``[S, H, 7]`` actions to ``[S]`` energies."""
        c = self.config
        start = time.perf_counter()
        if warm_start is not None:
            mean, std = warm_start.mean.to(self.device).clone(), warm_start.std.to(self.device).clone()
            if mean.shape != (c.horizon, 7):
                raise ValueError(f"warm start of shape {tuple(mean.shape)} does not match horizon {c.horizon}")
            # Keep some exploration: never start narrower than a quarter of the cold-start spread.
            std = torch.maximum(std, 0.25 * self.initial()[1])
        else:
            mean, std = self.initial()
        history = torch.full((c.iterations,), float("nan"), device=self.device)
        host_history = torch.empty(c.iterations, pin_memory=self.device.type == "cuda")
        best_seen, stale, ran = float("inf"), 0, 0
        autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.device.type == "cuda" and c.bf16)
        for iteration in range(c.iterations):
            actions = self.sample(mean, std)
            with torch.no_grad(), autocast:
                energies = score(actions).float()
            # NaN energies (a broken model or input) must never be chosen as elites.
            energies = torch.nan_to_num(energies, nan=float("inf"), posinf=float("inf"))
            top = torch.topk(energies, c.elites, largest=False)
            elites = actions[top.indices]
            elite_mean = elites.mean(0)
            elite_std = elites.std(0) if c.elites > 1 else torch.zeros_like(mean)
            m_mean = torch.where(self.gripper, c.momentum_mean_gripper, c.momentum_mean)
            m_std = torch.where(self.gripper, c.momentum_std_gripper, c.momentum_std)
            mean = (1 - m_mean) * elite_mean + m_mean * mean
            std = ((1 - m_std) * elite_std + m_std * std) * self.searched
            history[iteration] = top.values[0]
            ran = iteration + 1
            if c.early_stop_patience:
                host_history[iteration : iteration + 1].copy_(history[iteration : iteration + 1], non_blocking=True)
                if iteration > 0:
                    # The previous iteration's value is long computed by now: reading it does not stall.
                    previous = float(host_history[iteration - 1])
                    if previous < best_seen * (1 - c.early_stop_tolerance):
                        best_seen, stale = previous, 0
                    else:
                        stale += 1
                    if stale >= c.early_stop_patience:
                        break
        elite_energies = history[:ran].cpu()
        if not torch.isfinite(elite_energies).all():
            raise FloatingPointError("CEM got no finite energy from the world model; refusing to return an action")
        actions = mean.clone()
        actions[:, 6] = torch.where(actions[:, 6].abs() < c.gripper_round, torch.zeros_like(actions[:, 6]), actions[:, 6])
        actions = actions * self.searched
        if not torch.isfinite(actions).all():
            raise FloatingPointError("CEM produced a non-finite plan (the world model returned no finite energy)")
        return Plan(actions, mean, std, elite_energies, ran, time.perf_counter() - start, c.samples)
