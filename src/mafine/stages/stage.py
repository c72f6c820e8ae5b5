"""One stage of a run: its name in the manifest, and the one way to skip or record it.

A stage is done when the manifest says so and its outputs exist; then it is skipped with a
line saying so. Otherwise its work runs inside `record()`, which stores its status, timing,
requests and tokens in the manifest (see `RunDir.stage`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from mafine.rundir import RunDir, StageCounters, iteration_label
from mafine.ui import console


def stage_name(step: str, iteration: int | None = None) -> str:
    """`prepare`, or `<iteration>/<step>` with the iteration's directory name:
    `baseline/eval-debate`, `iter-2/train-debate`, `iter-2/build-sft`, `iter-2/finetune`."""
    return step if iteration is None else f"{iteration_label(iteration)}/{step}"


@dataclass(frozen=True)
class Stage:
    run: RunDir
    step: str
    iteration: int | None = None
    outputs: tuple[Path, ...] = ()

    @classmethod
    def of(
        cls, run: RunDir, step: str, iteration: int | None = None, outputs: Iterable[Path] = ()
    ) -> Stage:
        return cls(run, step, iteration, tuple(outputs))

    @property
    def name(self) -> str:
        return stage_name(self.step, self.iteration)

    def done(self) -> bool:
        return self.run.stage_status(self.name) == "done" and all(
            path.exists() for path in self.outputs
        )

    def skip(self, what: str) -> bool:
        """True (after saying `<name>: <what>, skipped`) when the stage is already done."""
        if not self.done():
            return False
        console.print(f"{self.name}: {what}, skipped")
        return True

    @contextmanager
    def record(self) -> Iterator[StageCounters]:
        with self.run.stage(self.name) as counters:
            yield counters


def report_usage(name: str, counters: StageCounters) -> None:
    """The line a stage that sent requests ends with: requests, journal hits, tokens, cost."""
    from mafine.pricing import format_cost

    cost = counters.cost or {}
    priced = ""
    if cost.get("priced_as"):
        batch = ", batch price" if cost.get("batch_pricing") else ""
        priced = (
            f", {format_cost(cost.get('cost_usd'))} "
            f"(priced as {cost['priced_as']}{batch}, prices of {cost['prices_as_of']})"
        )
    console.print(
        f"{name}: {counters.requests} requests sent, {counters.cached} answered from the "
        f"journal, {counters.usage.total_tokens} tokens{priced}",
        markup=False,
    )


# Every stage of a run, with the outputs that must exist for it to count as done.
SPLITS = ("train", "eval")


def prepare_stage(run: RunDir) -> Stage:
    return Stage.of(run, "prepare", outputs=[run.problems(split) for split in SPLITS])


def debate_stage(run: RunDir, iteration: int, split: str) -> Stage:
    return Stage.of(run, f"{split}-debate", iteration, [run.transcripts(iteration, split)])


def sft_stage(run: RunDir, iteration: int) -> Stage:
    return Stage.of(run, "build-sft", iteration, [run.sft_counts(iteration)])


def tuning_stage(run: RunDir, iteration: int) -> Stage:
    return Stage.of(run, "finetune", iteration, [run.models(iteration)])
