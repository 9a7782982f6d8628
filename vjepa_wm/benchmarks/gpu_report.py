"""The GPU suite's outputs: the JSON (environment + rows), the README rows as markdown, the table.

Files are replaced whole (written beside, then renamed), so a suite killed by its hard timeout
leaves the last complete report, never half a file.
"""
from __future__ import annotations

import json
import os
import platform
from pathlib import Path

import torch

from vjepa_wm.benchmarks.common import device_name, format_value, print_table

COLUMNS = ["name", "figure", "unit", "seconds", "matmul_fraction", "peak_gib", "wall_s", "note"]


def environment(device: torch.device, dry_run: bool, budget_s: float) -> dict:
    """What the figures were measured with (the torch build is the lent machine's own, whatever our pin says)."""
    return {"suite": "gpu", "dry_run": dry_run, "device": device_name(device), "torch": torch.__version__,
            "cuda": torch.version.cuda, "python": platform.python_version(), "budget_s": budget_s}


def note(row: dict) -> str:
    """Why a row has no figure, or what its figure is held against."""
    if row.get("error"):
        return f"failed: {row['error']}"
    if row.get("skipped"):
        return f"skipped: {row['skipped']}"
    parts = []
    if row.get("goal"):
        met = row.get("goal_met")
        parts.append(row["goal"] + ("" if met is None else (": met" if met else ": not met")))
    if row.get("baseline"):
        speedup = row.get("speedup")
        parts.append(f"{format_value(speedup)}x the speed of {row['baseline']}" if speedup else f"vs {row['baseline']}")
    return "; ".join(parts)


def markdown(report: dict) -> str:
    """The README rows: one header line saying where and with what, then the table."""
    rate = report.get("matmul_tflops")
    what = "dry run (tiny sizes, proves the code paths, measures nothing)" if report["dry_run"] else "published sizes"
    cuda = f", CUDA {report['cuda']}" if report.get("cuda") else ""
    lines = [
        f"`vjepa-wm bench gpu`, {what}: {report['device']}, torch {report['torch']}{cuda}, "
        f"matmul {format_value(rate)} TFLOP/s, {report['elapsed_s']:.0f} s of a {report['budget_s']:.0f} s budget.",
        "",
        "| row | figure | seconds | matmul fraction | peak GiB | goal / note |",
        "|---|---|---|---|---|---|",
    ]
    for row in report["rows"]:
        figure = f"{format_value(row['figure'])} {row['unit']}" if row.get("figure") is not None else "-"
        cells = [f"`{row['name']}`", figure, format_value(row.get("seconds")), format_value(row.get("matmul_fraction")),
                 format_value(row.get("peak_gib")), note(row).replace("|", "/")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _replace(path: str | Path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text)
    os.replace(partial, path)


def write_report(report: dict, json_path: str | None, markdown_path: str | None) -> None:
    if json_path:
        _replace(json_path, json.dumps(report, indent=2) + "\n")
    if markdown_path:
        _replace(markdown_path, markdown(report))


def print_report(report: dict) -> None:
    print_table([{**row, "note": note(row)} for row in report["rows"]], COLUMNS)
    failed = [row["name"] for row in report["rows"] if row.get("error")]
    skipped = [row["name"] for row in report["rows"] if row.get("skipped")]
    print(f"{len(report['rows'])} rows in {report['elapsed_s']:.0f} s on {report['device']} (torch {report['torch']}): "
          f"{len(failed)} failed{' (' + ', '.join(failed) + ')' if failed else ''}, "
          f"{len(skipped)} skipped{' (' + ', '.join(skipped) + ')' if skipped else ''}")
