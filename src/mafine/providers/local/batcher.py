"""Collect requests that arrive together and run them as batches on one worker thread.

No torch here: the batcher only groups awaiting callers and hands lists of items to a
function that runs in an executor.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any


@dataclass
class _Entry:
    group: Hashable
    item: Any
    size: int
    future: asyncio.Future


class Batcher:
    """Requests that are pending together are grouped (e.g. by model), sorted by size within
    a group so that batch-mates pad little, cut into batches of at most `max_rows`, and each
    batch is one call of `run(group, items)` on `executor`, off the event loop.

    While a batch runs, new requests queue up and form the next batches, so a burst of
    concurrent callers becomes a few large calls.
    """

    def __init__(
        self,
        run: Callable[[Hashable, list[Any]], list[Any]],
        executor: Executor,
        max_rows: int,
        window_s: float,
    ) -> None:
        self._run = run
        self._executor = executor
        self._max_rows = max_rows
        self._window_s = window_s
        self._pending: list[_Entry] = []
        self._task: asyncio.Task | None = None

    async def submit(self, group: Hashable, item: Any, size: int = 0) -> Any:
        loop = asyncio.get_running_loop()
        if self._task is not None and self._task.get_loop() is not loop:
            self._pending = []  # left behind by a finished event loop
            self._task = None
        future = loop.create_future()
        self._pending.append(_Entry(group, item, size, future))
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        while self._pending:
            # Let the callers that are starting together enqueue before the batch is cut.
            await asyncio.sleep(0)
            if self._window_s:
                await asyncio.sleep(self._window_s)
            entries, self._pending = self._pending, []
            groups: dict[Hashable, list[_Entry]] = {}
            for entry in entries:
                groups.setdefault(entry.group, []).append(entry)
            for group, members in groups.items():
                live = sorted((e for e in members if not e.future.done()), key=lambda e: e.size)
                for first in range(0, len(live), self._max_rows):
                    chunk = live[first : first + self._max_rows]
                    items = [e.item for e in chunk]
                    try:
                        results = await loop.run_in_executor(
                            self._executor, self._run, group, items
                        )
                        if len(results) != len(chunk):
                            raise RuntimeError(
                                f"a batch of {len(chunk)} gave {len(results)} results"
                            )
                    except asyncio.CancelledError:
                        for e in entries + self._pending:
                            if not e.future.done():
                                e.future.cancel()
                        raise
                    except Exception as exc:
                        for e in chunk:
                            if not e.future.done():
                                e.future.set_exception(exc)
                        continue
                    for e, result in zip(chunk, results, strict=True):
                        if not e.future.done():
                            e.future.set_result(result)
