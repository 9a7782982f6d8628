"""Seeded episodes run inline or spread over worker processes: how both sim collectors scale.

Each episode is a pure function of the collector's config and its index, so where it runs does
not change what it writes; a worker builds its simulator once and records many episodes with it.
Workers start by forkserver, not fork: a clean process (no inherited torch or tqdm threads) that,
unlike spawn, does not re-run the caller's ``__main__`` (``python -m vjepa_wm`` has no main guard).
"""
from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from typing import Callable, Iterator, TypeVar

Result = TypeVar("Result")


def run_episodes(make_env: Callable[[], object], record: Callable[[object, object, int], Result], config,
                 indices: list[int], workers: int) -> Iterator[Result]:
    """Yield ``record(env, config, index)`` for every index (in completion order with workers);
    `make_env` and `record` must be module-level (picklable) callables."""
    if workers == 1 or len(indices) <= 1:
        env = make_env()
        try:
            for index in indices:
                yield record(env, config, index)
        finally:
            env.close()
        return
    with ProcessPoolExecutor(workers, mp_context=get_context("forkserver"), initializer=_init_worker,
                             initargs=(make_env, record, config)) as pool:
        futures = [pool.submit(_record_in_worker, index) for index in indices]
        for future in as_completed(futures):
            yield future.result()


_WORKER: dict = {}  # per worker process: its env, record function and config, set once by the pool initializer


def _init_worker(make_env, record, config) -> None:
    _WORKER.update(env=make_env(), record=record, config=config)


def _record_in_worker(index: int):
    return _WORKER["record"](_WORKER["env"], _WORKER["config"], index)
