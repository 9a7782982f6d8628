"""`vjepa-wm bench gpu`: every published-size GPU figure in one call, inside a wall-time budget.

A GPU machine is lent for minutes, all tries together, so the measurement is one prepared
command that cannot stop half-way: rows run in the order of `ROWS` (the figures the project
reports first, the fast-path variants after them), and each row is

* skipped, with the reason, when the time already spent plus the row's expected wall time (on
  one H200, model construction included) would pass the budget;
* recorded with its reason when it fails (out of memory, any exception), and the suite goes on;
* started from freed device memory (freed after every row) with fresh peak-memory statistics.

The JSON and the README rows are rewritten after every row, so a hard timeout from outside
keeps every row finished before it. `--dry-run` runs the same rows at tiny sizes (`gpu_rows.DRY`),
which proves every code path on a CPU in well under two minutes.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import torch

from vjepa_wm.benchmarks import gpu_rows as rows
from vjepa_wm.benchmarks.common import device_name, pick_device
from vjepa_wm.benchmarks.gpu_report import environment, print_report, write_report
from vjepa_wm.benchmarks.gpu_rows import free_device_memory


@dataclass(frozen=True)
class Goal:
    """What the issue asks of a figure: at most `max_seconds`, at least `min_fraction` of the matmul rate."""

    max_seconds: float | None = None
    min_fraction: float | None = None

    def text(self, unit: str = "") -> str:
        parts = [f"<= {self.max_seconds:g} {unit}"] if self.max_seconds is not None else []
        if self.min_fraction is not None:
            parts.append(f">= {self.min_fraction:.0%} of the matmul rate")
        return ", ".join(parts)

    def met(self, row: dict) -> bool:
        fast = self.max_seconds is None or row["seconds"] <= self.max_seconds
        return fast and (self.min_fraction is None or row["matmul_fraction"] >= self.min_fraction)


@dataclass(frozen=True)
class RowSpec:
    name: str
    measure: Callable[["Suite"], dict]
    estimate_s: float  # expected wall seconds on one H200, model construction included (the budget check)
    what: str
    goal: Goal | None = None
    baseline: str | None = None  # a fast-path variant: the plain row its speed-up is taken against
    model_key: str | None = None  # the model it shares with the rows next to it (kept while they run)


ROWS: tuple[RowSpec, ...] = (
    RowSpec("matmul", rows.matmul, 5, "dense 8192^2 matmul, bf16 (fp32 on a CPU): the rate every fraction is of"),
    RowSpec("plan_published", rows.plan_published, 45,
            "planning: ViT-g + 24 x 1024 AC predictor, CEM 800 x 10, horizon 1, random weights (s per action)",
            Goal(max_seconds=2.0, min_fraction=0.8), model_key="plan_vit_g"),
    RowSpec("plan_lean", rows.plan_lean, 10, "planning, the same model, CEM 256 x 5", model_key="plan_vit_g"),
    RowSpec("plan_sim", rows.plan_sim, 10, "planning with the bundled sim model, CEM 64 x 5", model_key="plan_sim"),
    RowSpec("encoder_vit_g", rows.encoder_vit_g, 25, "encoder forward, ViT-g (2.1), one 16 x 256^2 clip",
            Goal(min_fraction=0.6)),
    RowSpec("encoder_vit_l", rows.encoder_vit_l, 10, "encoder forward, ViT-L (2.1), one 16 x 256^2 clip",
            Goal(min_fraction=0.6)),
    RowSpec("pretrain_vit_l", rows.pretrain_vit_l, 60,
            "one 2.1 pretraining step, ViT-L, 16 x 256^2, the largest batch of 24 / 48 / 96 that fits",
            Goal(min_fraction=0.5)),
    RowSpec("ac_published", rows.ac_published, 15,
            "one AC training step: the published predictor on ViT-g latents, 8 clips x 8 frames", Goal(min_fraction=0.5)),
    RowSpec("droid_180p", rows.droid_180p, 20, "raw-DROID decoding at 320x180, 0 and 8 loader workers (vs the AC step)"),
    RowSpec("droid_720p", rows.droid_720p, 40, "raw-DROID decoding at 1280x720, 0 and 8 loader workers (vs the AC step)"),
    RowSpec("encoder_vit_l_sdpa_math", rows.encoder_vit_l_sdpa_math, 15,
            "encoder_vit_l with SDPA's math kernel (the fused kernels off)", baseline="encoder_vit_l"),
    RowSpec("plan_lean_sdpa_math", rows.plan_lean_sdpa_math, 25, "plan_lean with SDPA's math kernel (the fused kernels off)",
            baseline="plan_lean", model_key="plan_vit_g"),
    RowSpec("plan_lean_compile", rows.plan_lean_compile, 90, "plan_lean with the CEM rollout under torch.compile",
            baseline="plan_lean", model_key="plan_vit_g"),
    RowSpec("plan_lean_cudagraphs", rows.plan_lean_cudagraphs, 60,
            "plan_lean with the CEM rollout under torch.compile with CUDA graphs (reduce-overhead)",
            baseline="plan_lean", model_key="plan_vit_g"),
    RowSpec("plan_published_compile", rows.plan_published_compile, 90,
            "plan_published with the CEM rollout under torch.compile", baseline="plan_published", model_key="plan_vit_g"),
)
ROW_NAMES = tuple(spec.name for spec in ROWS)


class Suite:
    """What the rows share: device, sizes, the budget clock, the matmul rate, one cached model."""

    def __init__(self, device: torch.device, sizes: rows.Sizes, repeats: int, budget_s: float, dry_run: bool,
                 compile_backend: str = "inductor"):
        self.device, self.sizes, self.repeats = device, sizes, repeats
        self.budget_s, self.dry_run, self.compile_backend = budget_s, dry_run, compile_backend
        self.results: dict[str, dict] = {}
        self.started = time.perf_counter()
        self._matmul: float | None = None
        self.model_key: str | None = None
        self._model = None

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def remaining(self) -> float:
        return self.budget_s - self.elapsed()

    def matmul_rate(self) -> float:
        """Measured once per run (by the first row that needs it): every fraction is of the same rate."""
        if self._matmul is None:
            from vjepa_wm.benchmarks.common import matmul_rate

            self._matmul = matmul_rate(self.device, size=self.sizes.matmul)
        return self._matmul

    @property
    def measured_matmul(self) -> float | None:
        return self._matmul

    def model(self, key: str, build: Callable[[], object]):
        if key != self.model_key:
            self.drop_model()
            self._model = build()
            self.model_key = key
        return self._model

    def drop_model(self) -> None:
        self._model = self.model_key = None


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def run_row(spec: RowSpec, suite: Suite, fail: bool = False) -> dict:
    """One row: measured, or skipped for the budget, or failed with its reason."""
    row = {"name": spec.name, "what": spec.what, "device": device_name(suite.device), "seconds": None, "figure": None,
           "unit": None, "matmul_fraction": None, "peak_gib": None, "wall_s": None, "error": None, "skipped": None}
    estimate = 0.0 if suite.dry_run else spec.estimate_s
    if suite.elapsed() + estimate > suite.budget_s:
        row["skipped"] = (f"budget: {suite.elapsed():.0f} s of {suite.budget_s:.0f} s spent, "
                          f"the row takes about {estimate:.0f} s")
        return row
    if suite.device.type == "cuda":  # memory was freed after the row before; its peak must not count here
        torch.cuda.reset_peak_memory_stats(suite.device)
    began, error = time.perf_counter(), None
    try:
        if fail:
            raise RuntimeError("made to fail by --fail-rows")
        figures = spec.measure(suite)
    except torch.OutOfMemoryError as err:
        error = f"out of memory: {_first_line(err)}"
    except Exception as err:  # the suite goes on: the row keeps the reason
        error = f"{type(err).__name__}: {_first_line(err)}"
    row["wall_s"] = time.perf_counter() - began
    if error is not None:
        row["error"] = error
        return row
    row.update(figures)
    if spec.goal is not None:
        row["goal"] = spec.goal.text(row["unit"])
        row["goal_met"] = None if suite.dry_run else spec.goal.met(row)
    if spec.baseline is not None:
        base = suite.results.get(spec.baseline, {}).get("seconds")
        row["baseline"] = spec.baseline
        row["speedup"] = base / row["seconds"] if base else None  # > 1: the variant is faster
    return row


def run_rows(specs: tuple[RowSpec, ...], suite: Suite, fail_rows: frozenset[str] = frozenset(),
             after_row: Callable[[list[dict]], None] | None = None) -> list[dict]:
    done: list[dict] = []
    for index, spec in enumerate(specs):
        row = run_row(spec, suite, spec.name in fail_rows)
        done.append(row)
        suite.results[spec.name] = row
        following = specs[index + 1].model_key if index + 1 < len(specs) else None
        if following is None or following != suite.model_key:
            suite.drop_model()
        free_device_memory()
        if after_row is not None:
            after_row(done)
    return done


def parse_names(text: str | None, option: str) -> list[str]:
    names = [n.strip() for n in (text or "").split(",") if n.strip()]
    unknown = [n for n in names if n not in ROW_NAMES]
    if unknown:
        raise ValueError(f"{option}: unknown row {unknown[0]!r}; choose from {', '.join(ROW_NAMES)}")
    return names


def run(config) -> int:
    """Run the suite of a `commands.bench.GpuBench` config; exit status 1 if a row failed unasked."""
    if config.budget_s <= 0:
        raise ValueError(f"--budget-s must be positive, got {config.budget_s}")
    if config.repeats is not None and config.repeats < 1:
        raise ValueError(f"--repeats must be >= 1, got {config.repeats}")
    if not config.compile_backend:
        raise ValueError("--compile-backend must name a torch.compile backend (inductor, eager, ...)")
    chosen = set(parse_names(config.rows, "--rows")) or set(ROW_NAMES)
    fail_rows = frozenset(parse_names(config.fail_rows, "--fail-rows"))
    device = pick_device(config.device)
    if device.type != "cuda" and not config.dry_run:
        raise ValueError(f"the full suite needs a GPU (the published sizes take hours on {device}); use --dry-run")

    threads = torch.get_num_threads()
    if config.dry_run and device.type == "cpu":
        # A dry run proves code paths; on a shared machine one thread is several times faster
        # than two that wait on each other's cores at every tiny op.
        torch.set_num_threads(1)
    suite = Suite(device, rows.DRY if config.dry_run else rows.FULL, config.repeats or (1 if config.dry_run else 3),
                  config.budget_s, config.dry_run, config.compile_backend)
    header = environment(device, config.dry_run, config.budget_s)

    def write(done: list[dict]) -> dict:
        rate = suite.measured_matmul
        report = {**header, "elapsed_s": suite.elapsed(), "matmul_tflops": rate / 1e12 if rate else None, "rows": done}
        write_report(report, config.json, config.markdown)
        return report

    try:
        done = run_rows(tuple(spec for spec in ROWS if spec.name in chosen), suite, fail_rows, write)
    finally:
        torch.set_num_threads(threads)
    print_report(write(done))
    return 1 if any(row["error"] and row["name"] not in fail_rows for row in done) else 0
