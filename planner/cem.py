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


def check_pinned(pinned: dict[int, float]) -> None:
    if any(not 0 <= dim < 7 for dim in pinned):
        raise ValueError(f"pinned dimensions must be action indices 0..6, got {sorted(pinned)}")


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
    # Box (metres, robot base frame) the planned end-effector positions must stay in, e.g. the region
    # the camera sees and the training data covered; None: unbounded. Applied when `search` is given
    # the current position: every candidate is cut back, step by step, to stay inside.
    workspace: tuple[tuple[float, float, float], tuple[float, float, float]] | None = None
    # Dimensions pinned to a constant in every sample and in the plan (the published `axis` option),
    # e.g. {6: 0.0} keeps the gripper as it is while reaching. Pinned dimensions are not searched.
    pinned: dict[int, float] = field(default_factory=dict)
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
        self.pinned = {int(dim): float(value) for dim, value in self.pinned.items()}
        if self.workspace is not None:
            low, high = (tuple(float(v) for v in corner) for corner in self.workspace)
            if len(low) != 3 or len(high) != 3 or any(a >= b for a, b in zip(low, high)):
                raise ValueError(f"workspace must be ((x, y, z) low, (x, y, z) high) with low < high, got {self.workspace}")
            self.workspace = (low, high)
        check_pinned(self.pinned)


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


@dataclass(frozen=True)
class SearchLayout:
    """Searched action dimensions and the values the others are held at."""

    searched: torch.Tensor  # [7] bool
    values: torch.Tensor  # [7], used where not searched

    def restrict(self, actions: torch.Tensor) -> torch.Tensor:
        """Unsearched dimensions set exactly: pinned ones to their value, the rest (rotations) to zero."""
        return torch.where(self.searched, actions, self.values)


class CEM:
    """One planner instance per device; `search` is called once per control step."""

    def __init__(self, config: CEMConfig, device: torch.device | str = "cpu"):
        self.config = config
        self.device = torch.device(device)
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(config.seed)
        c = config
        self.low = torch.tensor([-c.max_step] * 3 + [-c.max_rotation] * 3 + [-c.max_gripper], device=self.device)
        self.high = -self.low
        self.gripper = torch.zeros(7, dtype=torch.bool, device=self.device)
        self.gripper[6] = True
        self._layouts: dict[tuple, SearchLayout] = {}
        self.layout = self.layout_for(c.pinned)
        self.box = None if c.workspace is None else torch.tensor(c.workspace, device=self.device)  # [2, 3]

    def layout_for(self, pinned: dict[int, float]) -> "SearchLayout":
        """Which dimensions are searched and what the others are held at, for these pinned values."""
        key = tuple(sorted((int(d), float(v)) for d, v in pinned.items()))
        if key not in self._layouts:
            check_pinned(dict(key))
            searched = torch.zeros(7, dtype=torch.bool)
            searched[[0, 1, 2, 6]] = True
            if self.config.search_rotation:
                searched[3:6] = True
            values = torch.zeros(7)  # zero wherever nothing is pinned (rotations held, as published)
            for dim, value in key:
                searched[dim] = False
                values[dim] = value
            self._layouts[key] = SearchLayout(searched.to(self.device), values.to(self.device))
        return self._layouts[key]

    def initial(self, layout: "SearchLayout | None" = None) -> tuple[torch.Tensor, torch.Tensor]:
        c, layout = self.config, layout or self.layout
        mean = layout.values.expand(c.horizon, 7).clone()
        std = torch.tensor([c.max_step] * 3 + [c.max_rotation] * 3 + [c.init_std_gripper], device=self.device)
        return mean, (std * layout.searched).expand(c.horizon, 7).clone()

    def sample(self, mean: torch.Tensor, std: torch.Tensor, layout: "SearchLayout | None" = None) -> torch.Tensor:
        c = self.config
        noise = torch.randn(c.samples, c.horizon, 7, device=self.device, generator=self.generator)
        actions = (mean + std * noise).clamp(self.low, self.high)
        return (layout or self.layout).restrict(actions)

    def confine(self, actions: torch.Tensor, position: torch.Tensor | None) -> torch.Tensor:
        """Cut the xyz steps of ``[S, H, 7]`` actions so that the positions they lead to from
        `position` ``[3]`` stay in the workspace (a step from outside it moves toward it, at most
        `max_step` per axis). Unchanged without a workspace or a position."""
        if self.box is None or position is None:
            return actions
        actions = actions.clone()
        reached = position.to(actions.dtype).expand(actions.shape[0], 3)
        for step in range(actions.shape[1]):
            xyz = torch.maximum(torch.minimum(actions[:, step, :3], self.box[1] - reached), self.box[0] - reached)
            xyz = xyz.clamp(-self.config.max_step, self.config.max_step)
            actions[:, step, :3] = xyz
            reached = reached + xyz
        return actions

    def search(self, score: ScoreFn, warm_start: Plan | None = None, pinned: dict[int, float] | None = None,
               position: torch.Tensor | None = None) -> Plan:
        """Run the CEM iterations; `score` maps ``[S, H, 7]`` actions to ``[S]`` energies.

        `pinned` replaces the config's pinned dimensions for this search (a sub-goal may, say,
        close the gripper while the position is searched); `position` (the end effector's xyz now)
        keeps every candidate inside the configured workspace."""
        c = self.config
        layout = self.layout if pinned is None else self.layout_for(pinned)
        position = None if position is None else torch.as_tensor(position, device=self.device).reshape(3)
        start = time.perf_counter()
        if warm_start is not None:
            mean, std = warm_start.mean.to(self.device).clone(), warm_start.std.to(self.device).clone()
            if mean.shape != (c.horizon, 7):
                raise ValueError(f"warm start of shape {tuple(mean.shape)} does not match horizon {c.horizon}")
            mean = layout.restrict(mean)  # a plan made with other pinned values must not leak them
            # Keep some exploration: never start narrower than a quarter of the cold-start spread.
            std = torch.maximum(std, 0.25 * self.initial(layout)[1]) * layout.searched
        else:
            mean, std = self.initial(layout)
        history = torch.full((c.iterations,), float("nan"), device=self.device)
        host_history = torch.empty(c.iterations, pin_memory=self.device.type == "cuda")
        best_seen, stale, ran = float("inf"), 0, 0
        autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.device.type == "cuda" and c.bf16)
        for iteration in range(c.iterations):
            actions = self.confine(self.sample(mean, std, layout), position)
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
            std = ((1 - m_std) * elite_std + m_std * std) * layout.searched
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
        actions = self.confine(layout.restrict(actions)[None], position)[0]
        if not torch.isfinite(actions).all():
            raise FloatingPointError("CEM produced a non-finite plan (the world model returned no finite energy)")
        return Plan(actions, mean, std, elite_energies, ran, time.perf_counter() - start, c.samples)
