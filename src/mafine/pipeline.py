"""The stages wired together: what each command runs, skipping what is already finished."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from mafine.config import Config
from mafine.errors import MafineError
from mafine.grading import Grader, get_grader
from mafine.journal import Generator, Journal
from mafine.providers import open_provider
from mafine.providers.base import Provider, Sampling
from mafine.rundir import RunDir
from mafine.stages import build_sft, debate, evaluate, finetune, prepare
from mafine.stages.roster import load_records, roster
from mafine.ui import console

SPLITS = ("train", "eval")


@dataclass
class Session:
    """An open run directory with its provider, journal and grader."""

    run: RunDir
    provider: Provider
    journal: Journal
    grader: Grader


@asynccontextmanager
async def open_session(run: RunDir) -> AsyncIterator[Session]:
    config = run.config
    journal = Journal(run.journal)
    try:
        async with open_provider(config.provider, config.seed) as provider:
            yield Session(run, provider, journal, get_grader(config.grading))
    finally:
        journal.close()


def debate_done(run: RunDir, iteration: int, split: str) -> bool:
    return (
        run.stage_status(_debate_stage(iteration, split)) == "done"
        and run.transcripts(iteration, split).exists()
    )


async def debate_stage(session: Session, iteration: int, split: str) -> None:
    """Debate a split. Train debates of iteration k use the models of k-1 (the base models for
    k=1); eval debates of iteration k use its tuned models, and iteration 0 the base models."""
    run = session.run
    name = _debate_stage(iteration, split)
    if debate_done(run, iteration, split):
        console.print(f"{name}: already debated, skipped")
        return
    if split == "train" and iteration < 1:
        raise MafineError("train debates belong to iterations 1 and later")
    models_from = iteration - 1 if split == "train" else iteration
    agents = roster(load_records(run, models_from), run.config)
    problems = prepare.load_problems(run, split)
    with run.stage(name) as counters:
        generator = Generator(
            session.provider, session.journal, sampling(run.config), run.config.seed, counters
        )
        await debate.run_debates(
            run,
            name,
            problems,
            agents,
            generator,
            session.grader,
            run.transcripts(iteration, split),
        )
    _report_usage(name, counters)


async def evaluate_stage(session: Session, iteration: int) -> dict[str, Any]:
    """The base-model eval debate (once per run), the iteration's eval debate, the metrics."""
    load_records(session.run, iteration)  # fail before paying for baselines
    await debate_stage(session, 0, "eval")
    if iteration > 0:
        await debate_stage(session, iteration, "eval")
    return evaluate.evaluate_iteration(session.run, session.grader, iteration)


async def finetune_stage(session: Session, iteration: int) -> None:
    await finetune.finetune(session.run, session.provider, iteration)


async def run_all(session: Session) -> dict[str, Any]:
    """Every stage of every iteration; finished stages are skipped."""
    run = session.run
    prepare.prepare(run)
    summary: dict[str, Any] = {}
    for iteration in range(1, run.config.iterations + 1):
        console.rule(f"iteration {iteration}")
        await debate_stage(session, iteration, "train")
        build_sft.build_sft(run, session.grader, iteration)
        await finetune_stage(session, iteration)
        summary = await evaluate_stage(session, iteration)
    return summary


def sampling(config: Config) -> Sampling:
    return Sampling(
        temperature=config.sampling.temperature,
        top_p=config.sampling.top_p,
        max_output_tokens=config.sampling.max_output_tokens,
    )


def _debate_stage(iteration: int, split: str) -> str:
    return f"{'baseline' if iteration == 0 else f'iter-{iteration}'}/{split}-debate"


def _report_usage(name: str, counters: Any) -> None:
    console.print(
        f"{name}: {counters.requests} requests sent, {counters.cached} answered from the "
        f"journal, {counters.usage.total_tokens} tokens"
    )
