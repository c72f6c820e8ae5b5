"""The recipe: which stages each command runs, in which order. Finished stages skip
themselves (`stages.stage`), so every command can be rerun and resumes where it stopped."""

from __future__ import annotations

from typing import Any

from mafine.methods import METHODS
from mafine.stages import build_sft, evaluate, finetune, prepare
from mafine.stages.debate import debate_split
from mafine.stages.roster import load_records
from mafine.stages.session import Session, variant_sessions
from mafine.ui import console


async def evaluate_stage(
    session: Session, iteration: int, tuned_methods: bool = True
) -> dict[str, Any]:
    """The eval debates of the base models (once per run) and of iteration K's models, for
    the main method and every compared method that has them (only the base-only ones when not
    `tuned_methods`); then the results. A base-only compared method debates the eval split
    with the base models only, after the baselines, whose responses it may reuse from the
    journal."""
    run = session.run
    evaluate.refuse_dropping_later_results(run, iteration)
    load_records(run, iteration)  # fail before paying for baselines
    if run.config.evaluation.baselines:
        await debate_split(session, 0, "eval")
    if iteration > 0:
        await debate_split(session, iteration, "eval")
    async with variant_sessions(session, base_only=not tuned_methods) as variants:
        for name, variant in variants.items():
            console.rule(f"{name}: eval")  # its stages' lines name the variant's run only
            if METHODS.get(name).base_only:
                prepare.prepare(variant.run)
                await debate_split(variant, 0, "eval")
            elif iteration > 0 and variant.run.models(iteration).exists():
                await debate_split(variant, iteration, "eval")
        runs = {name: variant.run for name, variant in variants.items()}
        return await evaluate.write_results(
            run, session.grader, iteration, runs, provider=session.provider
        )


async def iterate(session: Session, iteration: int) -> None:
    """One iteration of the method: debate the train split, build data, tune."""
    await debate_split(session, iteration, "train")
    build_sft.build_sft(session.run, session.grader, iteration)
    await finetune.finetune(session.run, session.provider, iteration)


async def run_untuned(session: Session) -> dict[str, Any]:
    """What needs no tuning, on a provider that cannot tune with these settings: the problems,
    the base models' eval debates (the baselines) and their results; it says what it skipped
    and why."""
    config = session.run.config
    if not config.evaluation.baselines:
        finetune.require_tuning(config)  # nothing left to run: the one-line refusal
    provider = config.provider
    hint = provider.entry.tuning_hint or "fine-tuning needs a provider that can tune"
    tuned = [name for name in config.evaluation.compare if not METHODS.get(name).base_only]
    skipped = f"{config.iterations} iteration(s) of fine-tuning" + (
        f" and the compared methods {', '.join(tuned)}" if tuned else ""
    )
    console.print(
        f"provider {provider.name} cannot tune models here, so this run skips {skipped} and "
        f"runs the baselines and the methods that tune nothing; {hint}"
    )
    prepare.prepare(session.run)
    console.rule("evaluation")
    return await evaluate_stage(session, 0, tuned_methods=False)


async def run_all(session: Session) -> dict[str, Any]:
    """Every stage of every iteration, for the method and each compared method; finished
    stages are skipped. Compared methods share the provider and the journal, so a debate they
    have in common with the main run (the first train debate, say) costs nothing twice.
    Base-only compared methods (they tune nothing) run no iteration: `evaluate_stage`
    debates their eval split with the base models."""
    run = session.run
    if not run.config.provider.capabilities.tuning:
        return await run_untuned(session)
    iterations = run.config.iterations
    evaluate.refuse_dropping_later_results(run, iterations)
    prepare.prepare(run)
    for iteration in range(1, iterations + 1):
        console.rule(f"iteration {iteration}")
        await iterate(session, iteration)
        await debate_split(session, iteration, "eval")
    async with variant_sessions(session) as variants:
        for name, variant in variants.items():
            if METHODS.get(name).base_only:
                continue
            prepare.prepare(variant.run)
            for iteration in range(1, iterations + 1):
                console.rule(f"{name}: iteration {iteration}")
                await iterate(variant, iteration)
                await debate_split(variant, iteration, "eval")
    console.rule("evaluation")
    return await evaluate_stage(session, iterations)
