"""Cross-entropy-method search over action sequences of any `Embodiment`, batched on the model's device.

The search is the published V-JEPA 2-AC one, with the embodiment saying what an action is:
Gaussian samples of the searched dimensions per horizon step (the others held at zero, or at a
pinned value), clipped to the embodiment's per-step box, scored by an energy (`planner.energy`),
the top-k elites refitted with momentum on mean and std, and the final **mean** returned with
small values rounded to zero where the embodiment asks (the Franka gripper). For the Franka
this is exactly the published search: xyz and gripper searched, rotations held, box clipping,
momentum 0.15 (the gripper may have its own pair, `momentum_overrides`).

`candidates` swaps what is searched: a few numbers per candidate that expand into ``[S, H, A]``
actions before scoring (the car's straight lines, `planner.nav_candidates`). The same sampling,
clipping (to the candidates' box), elite refit and warm start then run over those numbers;
without it nothing changes.

Speed: every candidate of an iteration goes through the predictor in one batched pass (with a KV
cache across horizon steps, see `WorldModel.rollout`), under bf16 autocast on a GPU. Inside the
loop nothing waits for the host; the optional early stop reads the previous iteration's elite
energy through an asynchronous copy, so the device queue never drains.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Protocol

import torch

from vjepa_wm.embodiments import Embodiment

from .energy import ScoreFn
from .safety import workspace_problem


@dataclass
class CEMConfig:
    """The cross-entropy-method search: samples, iterations, elites, momentum and what it may not change."""

    samples: int = 800  # candidate action sequences per iteration
    iterations: int = 10  # refits of the sampling distribution per planned action
    horizon: int = 1  # actions per candidate sequence
    elites: int = 10  # best candidates the distribution is refitted to
    momentum_mean: float = 0.15  # weight of the previous mean in each refit
    momentum_std: float = 0.15  # weight of the previous spread in each refit
    # Per action name, its own (mean, std) momentum, e.g. {dgripper: [0.15, 0.15]} as published.
    momentum_overrides: dict[str, list[float]] = field(default_factory=dict)
    # Box the planned positions must stay in (low corner, high corner; robot base frame, the
    # embodiment's translation dimensions), e.g. the region the camera sees and the training data
    # covered; None: unbounded. Applied when `search` is given the current position: every
    # candidate is cut back, step by step, to stay inside.
    workspace: tuple[tuple[float, ...], tuple[float, ...]] | None = None
    # Action dimensions pinned to a constant in every sample and in the plan (the published `axis`
    # option), e.g. {6: 0.0} keeps the Franka gripper as it is while reaching. Not searched.
    pinned: dict[int, float] = field(default_factory=dict)
    early_stop_patience: int = 0  # 0 = off; else stop after this many iterations without improvement
    early_stop_tolerance: float = 1e-3  # relative improvement that counts
    seed: int = 0  # seed of the search's own random generator
    bf16: bool = True  # bf16 autocast on CUDA (never on a CPU)

    def __post_init__(self):
        for name in ("samples", "iterations", "horizon"):
            if getattr(self, name) < 1:
                raise ValueError(f"cem.{name} must be a positive integer, got {getattr(self, name)}")
        if not 1 <= self.elites <= self.samples:
            raise ValueError(f"cem.elites must be in [1, samples={self.samples}], got {self.elites}")
        for name in ("momentum_mean", "momentum_std"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"cem.{name} must be in [0, 1], got {getattr(self, name)}")
        if self.early_stop_patience < 0 or not 0 <= self.early_stop_tolerance < math.inf:
            raise ValueError("cem.early_stop_patience must be >= 0 and cem.early_stop_tolerance finite and >= 0")
        self.pinned = {int(dim): float(value) for dim, value in self.pinned.items()}
        for dim, value in self.pinned.items():
            if dim < 0 or not math.isfinite(value):
                raise ValueError(f"cem.pinned must map action indices to finite numbers, got {self.pinned}")
        self.momentum_overrides = {str(k): [float(x) for x in v] for k, v in self.momentum_overrides.items()}
        for name, pair in self.momentum_overrides.items():
            if len(pair) != 2 or not all(0 <= m <= 1 for m in pair):
                raise ValueError(f"cem.momentum_overrides[{name}] must be [mean, std] momenta in [0, 1], got {pair}")
        if self.workspace is not None:
            low, high = (tuple(float(v) for v in corner) for corner in self.workspace)
            if len(low) != len(high) or not all(math.isfinite(v) for v in low + high) or any(a >= b for a, b in zip(low, high)):
                raise ValueError(f"cem.workspace must be (low corner, high corner) of finite numbers with low < high, got {self.workspace}")
            self.workspace = (low, high)


class Candidates(Protocol):
    """What a search varies when it is not one action per step: ``rows x len(names)`` numbers per
    candidate, in the box `low .. high`, that `expand` turns into ``[S, H, A]`` actions."""

    names: tuple[str, ...]  # one per searched number (momentum_overrides address them by name)
    rows: int
    horizon: int  # H of the expanded actions
    low: tuple[float, ...]
    high: tuple[float, ...]

    def initial(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Cold-start mean and std, ``[rows, len(names)]`` each."""

    def expand(self, searched: torch.Tensor) -> torch.Tensor:
        """``[S, rows, len(names)]`` -> ``[S, H, A]`` actions inside the embodiment's step box."""


@dataclass
class Plan:
    actions: torch.Tensor  # [H, A] the returned sequence (mean, unsearched dims held, small values rounded)
    mean: torch.Tensor  # [H, A] raw search mean (for warm starts; [rows, numbers] with candidates)
    std: torch.Tensor  # [H, A] (or [rows, numbers])
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


@dataclass(frozen=True)
class SearchLayout:
    """Searched action dimensions and the values the others are held at."""

    searched: torch.Tensor  # [A] bool
    values: torch.Tensor  # [A], used where not searched

    def restrict(self, actions: torch.Tensor) -> torch.Tensor:
        """Unsearched dimensions set exactly: pinned ones to their value, the rest to zero."""
        return torch.where(self.searched, actions, self.values)


def _as_slice(dims: tuple[int, ...]) -> slice | list[int]:
    """Consecutive dimensions as a slice (a view, no gather), others as an index list."""
    if dims and dims == tuple(range(dims[0], dims[-1] + 1)):
        return slice(dims[0], dims[-1] + 1)
    return list(dims)


class CEM:
    """One planner instance per embodiment and device; `search` is called once per control step."""

    def __init__(self, config: CEMConfig, embodiment: Embodiment, device: torch.device | str = "cpu",
                 candidates: Candidates | None = None):
        self.config = config
        self.embodiment = embodiment
        self.candidates = candidates
        self.device = torch.device(device)
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(config.seed)
        c, e = config, embodiment
        if candidates is not None:
            if candidates.horizon != c.horizon:
                raise ValueError(f"the candidates expand to {candidates.horizon} steps, cem.horizon is {c.horizon}")
            if c.pinned:
                raise ValueError("cem.pinned holds action dimensions; it cannot be used with candidates (the nwm mode)")
        names = e.action_names if candidates is None else candidates.names
        self.dims = len(names)
        self.rows = c.horizon if candidates is None else candidates.rows
        self.low = torch.tensor(e.action_low if candidates is None else candidates.low, device=self.device)
        self.high = torch.tensor(e.action_high if candidates is None else candidates.high, device=self.device)
        self.round_below = torch.tensor(e.round_below, device=self.device)
        self.momentum_mean = torch.full((self.dims,), c.momentum_mean)
        self.momentum_std = torch.full((self.dims,), c.momentum_std)
        for name, (mean, std) in c.momentum_overrides.items():
            if candidates is not None and name not in names:
                raise ValueError(f"cem.momentum_overrides: unknown name {name!r} (searched: {', '.join(names)})")
            index = e.index(name) if candidates is None else names.index(name)
            self.momentum_mean[index], self.momentum_std[index] = mean, std
        self.momentum_mean, self.momentum_std = self.momentum_mean.to(self.device), self.momentum_std.to(self.device)
        self.translation = _as_slice(e.translation)
        self.box = None
        if c.workspace is not None:
            problem = workspace_problem(c.workspace, e)
            if problem is not None:
                raise ValueError(problem)
            self.box = torch.tensor(c.workspace, device=self.device)  # [2, translation dims]
        self._layouts: dict[tuple, SearchLayout] = {}
        self.layout = self.layout_for(c.pinned)

    def layout_for(self, pinned: dict[int, float]) -> SearchLayout:
        """Which dimensions are searched and what the others are held at, for these pinned values."""
        key = tuple(sorted((int(d), float(v)) for d, v in pinned.items()))
        if self.candidates is not None:
            if key:
                raise ValueError("pinned action dimensions cannot be used with candidates (the nwm mode)")
            searched = torch.ones(self.dims, dtype=torch.bool, device=self.device)
            return self._layouts.setdefault(key, SearchLayout(searched, torch.zeros(self.dims, device=self.device)))
        if key not in self._layouts:
            self.embodiment.check_pinned(dict(key))
            searched = torch.tensor(self.embodiment.searched, dtype=torch.bool)
            values = torch.zeros(self.dims)  # zero wherever nothing is pinned (e.g. rotations held, as published)
            for dim, value in key:
                searched[dim] = False
                values[dim] = value
            self._layouts[key] = SearchLayout(searched.to(self.device), values.to(self.device))
        return self._layouts[key]

    def initial(self, layout: SearchLayout | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        c, layout = self.config, layout or self.layout
        if self.candidates is not None:
            return tuple(t.to(self.device, torch.float32).clone() for t in self.candidates.initial())
        mean = layout.values.expand(c.horizon, self.dims).clone()
        std = torch.tensor(self.embodiment.initial_std, device=self.device)
        return mean, (std * layout.searched).expand(c.horizon, self.dims).clone()

    def sample(self, mean: torch.Tensor, std: torch.Tensor, layout: SearchLayout | None = None) -> torch.Tensor:
        c = self.config
        noise = torch.randn(c.samples, self.rows, self.dims, device=self.device, generator=self.generator)
        actions = (mean + std * noise).clamp(self.low, self.high)
        return (layout or self.layout).restrict(actions)

    def expand(self, searched: torch.Tensor) -> torch.Tensor:
        """Searched numbers ``[S, rows, n]`` -> actions ``[S, H, A]`` (the same tensor without candidates)."""
        return searched if self.candidates is None else self.candidates.expand(searched)

    def position_of(self, state: torch.Tensor) -> torch.Tensor | None:
        """The part of a state ``[S]`` that the workspace box bounds (None without a box)."""
        if self.box is None:
            return None
        return torch.as_tensor(state, device=self.device).reshape(-1)[self.translation]

    def confine(self, actions: torch.Tensor, position: torch.Tensor | None) -> torch.Tensor:
        """Cut the translation steps of ``[S, H, A]`` actions so that the positions they lead to from
        `position` stay in the workspace (a step from outside it moves toward it, at most one step's
        bound per axis). Unchanged without a workspace or a position."""
        if self.box is None or position is None:
            return actions
        t = self.translation
        actions = actions.clone()
        low, high = self.low[t], self.high[t]
        reached = position.to(actions.dtype).expand(actions.shape[0], -1)
        for step in range(actions.shape[1]):
            moves = torch.maximum(torch.minimum(actions[:, step, t], self.box[1] - reached), self.box[0] - reached)
            moves = torch.maximum(torch.minimum(moves, high), low)
            actions[:, step, t] = moves
            reached = reached + moves
        return actions

    def search(self, score: ScoreFn, warm_start: Plan | None = None, pinned: dict[int, float] | None = None,
               position: torch.Tensor | None = None) -> Plan:
        """Run the CEM iterations; `score` maps ``[S, H, A]`` actions to ``[S]`` energies.

        `pinned` replaces the config's pinned dimensions for this search (a sub-goal may, say,
        close the gripper while the position is searched); `position` (the translation part of
        the state now, see `position_of`) keeps every candidate inside the configured workspace."""
        c = self.config
        layout = self.layout if pinned is None else self.layout_for(pinned)
        position = None if position is None else torch.as_tensor(position, device=self.device).reshape(-1)
        start = time.perf_counter()
        if warm_start is not None:
            mean, std = warm_start.mean.to(self.device).clone(), warm_start.std.to(self.device).clone()
            if mean.shape != (self.rows, self.dims):
                raise ValueError(f"warm start of shape {tuple(mean.shape)} does not match {self.rows} x {self.dims} searched numbers")
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
            searched = self.sample(mean, std, layout)
            actions = self.confine(self.expand(searched), position)
            if self.candidates is None:
                searched = actions  # the refit sees the confined steps, as published
            with torch.no_grad(), autocast:
                energies = score(actions).float()
            # NaN energies (a broken model or input) must never be chosen as elites.
            energies = torch.nan_to_num(energies, nan=float("inf"), posinf=float("inf"))
            top = torch.topk(energies, c.elites, largest=False)
            elites = searched[top.indices]
            elite_mean = elites.mean(0)
            elite_std = elites.std(0) if c.elites > 1 else torch.zeros_like(mean)
            mean = (1 - self.momentum_mean) * elite_mean + self.momentum_mean * mean
            std = ((1 - self.momentum_std) * elite_std + self.momentum_std * std) * layout.searched
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
        planned = self.expand(mean[None])[0]
        actions = torch.where(planned.abs() < self.round_below, torch.zeros_like(planned), planned)
        if self.candidates is None:
            actions = layout.restrict(actions)
        actions = self.confine(actions[None], position)[0]
        if not torch.isfinite(actions).all():
            raise FloatingPointError("CEM produced a non-finite plan (the world model returned no finite energy)")
        return Plan(actions, mean, std, elite_energies, ran, time.perf_counter() - start, c.samples)
