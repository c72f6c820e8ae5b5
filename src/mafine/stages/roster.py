"""Which model each agent uses at each iteration: the base models, then the tuned ones."""

from __future__ import annotations

from dataclasses import dataclass

from mafine.artifacts import ModelRecord
from mafine.config import Config
from mafine.errors import MafineError
from mafine.jsonl import read_rows
from mafine.rundir import RunDir
from mafine.stages.stage import tuning_stage


@dataclass(frozen=True)
class AgentModels:
    """One agent's models for a debate: a generator, and a critic when the agent has one."""

    agent: int
    generator: str
    critic: str | None


def base_records(config: Config) -> list[ModelRecord]:
    """Iteration 0: every agent model is the base model."""
    base = config.provider.model
    return [
        ModelRecord(
            agent=agent,
            role=role,
            base_model=base,
            start_checkpoint=base,
            state="kept",
            serving_model=base,
            checkpoint=base,
        )
        for agent in range(config.agents.count)
        for role in model_roles(config, agent)
    ]


def model_roles(config: Config, agent: int) -> list[str]:
    return ["generator", "critic"] if agent < config.agents.critics else ["generator"]


def load_records(run: RunDir, iteration: int) -> list[ModelRecord]:
    """The finished models of an iteration (0 is the base models)."""
    if iteration == 0:
        return base_records(run.config)
    path = run.models(iteration)
    if not tuning_stage(run, iteration).done():
        provider = run.config.provider
        if not provider.capabilities.tuning:  # `mafine finetune` would be refused
            raise MafineError(
                f"iteration {iteration} has no tuned models: provider {provider.name} cannot "
                "tune models here; evaluate the base models with --iteration 0"
            )
        raise MafineError(f"iteration {iteration} has no tuned models yet: run `mafine finetune`")
    return list(read_rows(path, ModelRecord))


def roster(records: list[ModelRecord], config: Config) -> list[AgentModels]:
    serving = {(r.agent, r.role): r.serving_model for r in records}
    agents = []
    for agent in range(config.agents.count):
        generator = serving.get((agent, "generator"))
        if generator is None:
            raise MafineError(f"no generator model recorded for agent {agent}")
        agents.append(AgentModels(agent, generator, serving.get((agent, "critic"))))
    return agents
