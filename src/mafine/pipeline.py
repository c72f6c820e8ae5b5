"""The stages wired together: what each command runs, skipping what is already finished."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any

from mafine.config import Config, variant_config
from mafine.errors import MafineError
from mafine.grading import Grader, get_grader
from mafine.journal import Generator, Journal
from mafine.providers import open_provider
from mafine.providers.base import Provider, Sampling
from mafine.rundir import RunDir
from mafine.stages import build_sft, debate, evaluate, finetune, prepare
from mafine.stages.roster import load_records, roster
from mafine.ui import console


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
        async with open_provider(config.provider, config.seed, run.root) as provider:
            with get_grader(config.grading) as grader:
                yield Session(run, provider, journal, grader)
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
            session.provider,
            session.journal,
            sampling(run.config),
            run.config.seed,
            counters,
            empty_limit=run.config.provider.empty_response_limit,
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
    """The eval debates of the base models (once per run) and of iteration K's models, for
    the main method and every compared variant that has them; then the results."""
    run = session.run
    evaluate.refuse_dropping_later_results(run, iteration)
    load_records(run, iteration)  # fail before paying for baselines
    if run.config.evaluation.baselines:
        await debate_stage(session, 0, "eval")
    if iteration > 0:
        await debate_stage(session, iteration, "eval")
    async with variant_sessions(session) as variants:
        for variant in variants.values():
            if iteration > 0 and variant.run.models(iteration).exists():
                await debate_stage(variant, iteration, "eval")
        runs = {name: variant.run for name, variant in variants.items()}
        return await evaluate.write_results(
            run, session.grader, iteration, runs, provider=session.provider
        )


async def finetune_stage(session: Session, iteration: int) -> None:
    await finetune.finetune(session.run, session.provider, iteration)


async def iterate(session: Session, iteration: int) -> None:
    """One iteration of the method: debate the train split, build data, tune."""
    await debate_stage(session, iteration, "train")
    build_sft.build_sft(session.run, session.grader, iteration)
    await finetune_stage(session, iteration)


async def run_all(session: Session) -> dict[str, Any]:
    """Every stage of every iteration, for the method and each compared variant; finished
    stages are skipped. Variants share the provider and the journal, so a debate they have in
    common with the main run (the first train debate, say) costs nothing twice."""
    run = session.run
    iterations = run.config.iterations
    evaluate.refuse_dropping_later_results(run, iterations)
    prepare.prepare(run)
    for iteration in range(1, iterations + 1):
        console.rule(f"iteration {iteration}")
        await iterate(session, iteration)
        await debate_stage(session, iteration, "eval")
    async with variant_sessions(session) as variants:
        for name, variant in variants.items():
            prepare.prepare(variant.run)
            for iteration in range(1, iterations + 1):
                console.rule(f"{name}: iteration {iteration}")
                await iterate(variant, iteration)
                await debate_stage(variant, iteration, "eval")
    console.rule("evaluation")
    return await evaluate_stage(session, iterations)


@contextmanager
def variant_runs(run: RunDir) -> Iterator[dict[str, RunDir]]:
    """The compared variants' run directories, opened (and locked) beside the run."""
    with ExitStack() as stack:
        variants = {
            name: stack.enter_context(RunDir.open(variant_config(run.config, name)))
            for name in run.config.evaluation.compare
        }
        for variant in variants.values():
            variant.share_journal(run.journal)  # their requests go to the run's journal
        yield variants


@asynccontextmanager
async def variant_sessions(session: Session) -> AsyncIterator[dict[str, Session]]:
    """Sessions for the compared variants: their own run directories, the shared provider,
    journal and grader."""
    with variant_runs(session.run) as runs:
        yield {
            name: Session(run, session.provider, session.journal, session.grader)
            for name, run in runs.items()
        }


def sampling(config: Config) -> Sampling:
    return Sampling(
        temperature=config.sampling.temperature,
        top_p=config.sampling.top_p,
        max_output_tokens=config.sampling.max_output_tokens,
    )


def _debate_stage(iteration: int, split: str) -> str:
    return f"{'baseline' if iteration == 0 else f'iter-{iteration}'}/{split}-debate"


def _report_usage(name: str, counters: Any) -> None:
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
