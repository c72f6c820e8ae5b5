"""finetune: one tuning job per agent model, recorded before it is polled.

The models file is rewritten (atomically) after every submission, so a rerun finds the job
names it already submitted and polls them instead of paying for them again.
"""

from __future__ import annotations

import asyncio

from mafine.artifacts import ModelRecord, SFTCount
from mafine.config import Config
from mafine.errors import MafineError
from mafine.jsonl import read_rows, write_rows
from mafine.providers.base import Provider, TuningSpec
from mafine.rundir import RunDir
from mafine.seeds import tuning_seed
from mafine.stages.roster import load_records
from mafine.stages.stage import tuning_stage
from mafine.ui import console


def require_tuning(config: Config) -> None:
    """Refuse, before anything is spent, a run that needs tuning on a provider that cannot
    tune with these settings (its registry entry declares what it can do)."""
    provider = config.provider
    if not provider.capabilities.tuning:
        hint = provider.entry.tuning_hint or "fine-tuning needs a provider that can tune"
        raise MafineError(f"provider {provider.name} cannot tune models here; {hint}")


async def finetune(run: RunDir, provider: Provider, iteration: int) -> list[ModelRecord]:
    require_tuning(run.config)
    stage = tuning_stage(run, iteration)
    name = stage.name
    if stage.skip("models already tuned"):
        return list(read_rows(run.models(iteration), ModelRecord))
    with stage.record():
        records = plan_models(run, iteration)
        _save(run, iteration, records)
        for index, record in enumerate(records):
            if record.state != "pending":
                continue
            job = provider.start_tuning(_spec(run, iteration, record))
            console.print(
                f"{name}: agent {record.agent} {record.role} ({record.examples} examples) "
                f"submitted as {job}"
            )
            records[index] = record.model_copy(
                update={"job_name": job, "state": "submitted", "error": None}
            )
            _save(run, iteration, records)
        records = _fill_shared(await _poll_until_done(run, provider, iteration, records))
        _save(run, iteration, records)
        failed = [r for r in records if r.state == "failed"]
        if failed:
            details = "; ".join(
                f"agent {r.agent} {r.role} ({r.job_name}): {r.error}" for r in failed
            )
            raise MafineError(f"tuning failed for {details}; rerun `mafine finetune` to resubmit")
    return records


def plan_models(run: RunDir, iteration: int) -> list[ModelRecord]:
    """This iteration's records: those already submitted, else a plan from the SFT counts.

    A model with no examples keeps its previous model, and so do critics when critics are not
    tuned; with single-agent selection every model shares agent 0's generator. A failed job
    is planned again.
    """
    config = run.config
    single = config.sft.selection == "single_agent"
    base = config.provider.model
    existing = {}
    if run.models(iteration).exists():
        existing = {(r.agent, r.role): r for r in read_rows(run.models(iteration), ModelRecord)}
    counts = {(c.agent, c.role): c.total for c in read_rows(run.sft_counts(iteration), SFTCount)}
    plan = []
    for before in load_records(run, iteration - 1):
        key = (before.agent, before.role)
        record = existing.get(key)
        if record is not None and record.state != "failed":
            plan.append(record)
            continue
        examples = counts.get(key, 0)
        previous = before.checkpoint or base
        start = previous if config.finetune.start_from == "continue" else base
        common = {"agent": before.agent, "role": before.role, "base_model": base}
        if single and key != (0, "generator"):
            plan.append(ModelRecord(**common, start_checkpoint=start, state="shared"))
        elif examples == 0 or (before.role == "critic" and not config.finetune.tune_critics):
            plan.append(
                ModelRecord(
                    **common,
                    start_checkpoint=previous,
                    state="kept",
                    serving_model=before.serving_model,
                    checkpoint=before.checkpoint,
                )
            )
        else:
            plan.append(
                ModelRecord(**common, start_checkpoint=start, examples=examples, state="pending")
            )
    return plan


def _spec(run: RunDir, iteration: int, record: ModelRecord) -> TuningSpec:
    config = run.config
    # Named by the run's id (kept in its manifest), not its folder: a moved or copied run
    # finds the jobs it already created instead of paying for them again.
    display = f"{run.run_id}-i{iteration}-a{record.agent}-{record.role}"
    return TuningSpec(
        display_name=display,
        start_checkpoint=record.start_checkpoint,
        training_file=run.sft_file(iteration, record.agent, record.role),
        output_dir=run.tuning_dir(iteration) / f"agent-{record.agent}-{record.role}",
        epochs=config.finetune.epochs,
        learning_rate_multiplier=config.finetune.learning_rate_multiplier,
        adapter_size=config.finetune.adapter_size,
        seed=tuning_seed(config.seed, iteration, record.agent, record.role),
    )


async def _poll_until_done(
    run: RunDir, provider: Provider, iteration: int, records: list[ModelRecord]
) -> list[ModelRecord]:
    interval = run.config.finetune.poll_seconds
    while True:
        for index, record in enumerate(records):
            if record.state != "submitted" or record.job_name is None:
                continue
            status = provider.poll_tuning(record.job_name)
            if status.state == "running":
                continue
            records[index] = record.model_copy(
                update={
                    "state": status.state,
                    "serving_model": status.serving_model,
                    "checkpoint": status.checkpoint,
                    "error": status.error,
                }
            )
            name = tuning_stage(run, iteration).name
            console.print(f"{name}: agent {record.agent} {record.role} {status.state}")
            _save(run, iteration, records)
        if not any(record.state == "submitted" for record in records):
            return records
        await asyncio.sleep(interval)


def _fill_shared(records: list[ModelRecord]) -> list[ModelRecord]:
    """Point every shared record at agent 0's generator, once that one is settled."""
    source = next(r for r in records if (r.agent, r.role) == (0, "generator"))
    return [
        record.model_copy(
            update={"serving_model": source.serving_model, "checkpoint": source.checkpoint}
        )
        if record.state == "shared"
        else record
        for record in records
    ]


def _save(run: RunDir, iteration: int, records: list[ModelRecord]) -> None:
    write_rows(run.models(iteration), records)
