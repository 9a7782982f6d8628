"""Shared test setup.

The official V-JEPA 2 model code (pip `cc-vjepa2`) imports `timm.models.layers.drop_path` at
module level; timm itself needs torchvision, which has no CPU build here. The tests register a
minimal `timm.models.layers` providing only `drop_path` (stochastic depth, the identity at
evaluation) so the official classes import; no model math is replaced.

Every test must leave the process's scheduling policy as it found it: a library that raises the
main thread to real-time priority (SVT-AV1 does, as root) makes every later thread real-time too,
and two such busy threads on 2 cores starve the ROS 2 peers of later tests until the suite hangs.
"""
from __future__ import annotations

import importlib.machinery
import os
import sys
import types

import pytest
import torch

os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(autouse=True)
def _scheduling_policy_is_left_alone():
    before = os.sched_getscheduler(0), os.sched_getparam(0)
    yield
    after = os.sched_getscheduler(0), os.sched_getparam(0)
    if after != before:
        os.sched_setscheduler(0, *before)  # the tests after this one run as they should
        pytest.fail(f"the test changed the main thread's scheduling policy from {before} to {after}")


def _install_timm_drop_path() -> None:
    try:
        import timm.models.layers  # noqa: F401

        return
    except ImportError:
        pass

    def drop_path(x, drop_prob: float = 0.0, training: bool = False, scale_by_keep: bool = True):
        if drop_prob == 0.0 or not training:
            return x
        keep = 1 - drop_prob
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep if scale_by_keep else x * mask

    timm = types.ModuleType("timm")
    models = types.ModuleType("timm.models")
    layers = types.ModuleType("timm.models.layers")
    for module in (timm, models, layers):  # importlib.util.find_spec (transformers asks) needs a spec
        module.__spec__ = importlib.machinery.ModuleSpec(module.__name__, None)
    layers.drop_path = drop_path
    timm.models = models
    models.layers = layers
    sys.modules.update({"timm": timm, "timm.models": models, "timm.models.layers": layers})


_install_timm_drop_path()


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)

