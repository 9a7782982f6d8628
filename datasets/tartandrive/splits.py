"""Train/test splits and eval indices, by the published rules.

Split (GNM `data_split.py`, which NWM's `data_splits/tartan_drive` came from: 1000 train / 251
test = int(0.8 x 1251)): shuffle the trajectory names and put the first int(0.8 n) in train, the
rest in test. Upstream shuffles unseeded; we shuffle the sorted names with a seeded RNG so a
split can be made again.

Eval index (NWM `BaseDataset._build_index`): for each trajectory of length T, every
curr_time in range(context - 1, T - len_traj_pred, stride) gives
(name, curr_time, max(min_goal, -curr_time), min(max_goal, T - curr_time - 1)). NWM's
`config/eval_config.yaml` sets the three test files:

- `navigation_eval.pkl` (planning): context 4, len_traj_pred 8, goal offsets 8..8, stride 8,
  built over `rollout_traj_names.txt`; so a trajectory needs T >= 12, and the goal is the frame
  exactly 8 steps (2 s at 4 Hz) ahead of the last of 4 context frames;
- `rollout.pkl` (over the rollout names) and `time.pkl` (over all test names): context 4,
  len_traj_pred 64, goal offsets -64..64, stride 8.

The published files are subsets of those indices (read from NWM's `data_splits/tartan_drive/
test/`: 100 / 150 / 500 entries, every curr_time = 3 mod 8, 64 rollout trajectories taken from
the 251 test ones), drawn by a rule that is not published; we draw them with the seeded RNG and
keep them in index order. Rollout trajectories are drawn among the test trajectories that give
at least one planning entry.
"""
from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .nwm_format import EvalEntry

TRAIN_FRACTION = 0.8  # GNM data_split.py --split default


@dataclass(frozen=True)
class IndexRule:
    """One NWM eval index: which names it is built over and `_build_index`'s settings."""

    file: str
    over: str  # "rollout" (rollout_traj_names.txt) or "test" (test/traj_names.txt)
    context: int
    len_traj_pred: int
    min_goal: int
    max_goal: int
    stride: int = 8  # eval_config.yaml traj_stride


NAVIGATION_EVAL = IndexRule("navigation_eval.pkl", "rollout", context=4, len_traj_pred=8, min_goal=8, max_goal=8)
ROLLOUT = IndexRule("rollout.pkl", "rollout", context=4, len_traj_pred=64, min_goal=-64, max_goal=64)
TIME = IndexRule("time.pkl", "test", context=4, len_traj_pred=64, min_goal=-64, max_goal=64)


def split_names(names: Sequence[str], seed: int = 0, train_fraction: float = TRAIN_FRACTION) -> tuple[list[str], list[str]]:
    """(train, test): the seeded shuffle of the sorted names cut at int(train_fraction x n)."""
    shuffled = sorted(set(names))
    random.Random(seed).shuffle(shuffled)
    cut = int(train_fraction * len(shuffled))
    return shuffled[:cut], shuffled[cut:]


def build_index(lengths: Mapping[str, int], names: Sequence[str], rule: IndexRule) -> list[EvalEntry]:
    """Every entry `_build_index` makes for `names` (trajectory name -> length in `lengths`)."""
    entries = []
    for name in names:
        length = lengths[name]
        for curr in range(rule.context - 1, length - rule.len_traj_pred, rule.stride):
            entries.append((name, curr, max(rule.min_goal, -curr), min(rule.max_goal, length - curr - 1)))
    return entries


def sample_entries(entries: Sequence[EvalEntry], count: int, seed: int) -> list[EvalEntry]:
    """At most `count` entries drawn without replacement, kept in index order."""
    if count >= len(entries):
        return list(entries)
    keep = sorted(random.Random(seed).sample(range(len(entries)), count))
    return [entries[i] for i in keep]


def rollout_names(lengths: Mapping[str, int], test: Sequence[str], count: int, seed: int) -> list[str]:
    """`count` test trajectories (drawn with the seed) long enough for a planning entry, in test order."""
    usable = [name for name in test if build_index(lengths, [name], NAVIGATION_EVAL)]
    if count >= len(usable):
        return usable
    keep = set(random.Random(seed).sample(usable, count))
    return [name for name in usable if name in keep]
