"""debate: N agents answer, critics revise over M rounds, the majority decides.

Every finished debate is appended to a partial file at once; an interrupted stage resumes
from it, and the finished transcripts are published in problem order, atomically.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from pathlib import Path
from typing import TypeVar

from mafine.artifacts import AgentTrace, Completion, Message, Problem, Summary, Transcript, Turn
from mafine.config import Config
from mafine.errors import MafineError
from mafine.grading import Grader, extract_answer
from mafine.grading.vote import TieBreak, majority_vote
from mafine.journal import Generator
from mafine.jsonl import AppendLog, iter_log, read_at, write_rows
from mafine.prompts import render
from mafine.rundir import RunDir
from mafine.stages.prepare import load_problems
from mafine.stages.roster import AgentModels, load_records, roster
from mafine.stages.session import Session, sampling
from mafine.stages.stage import debate_stage, report_usage
from mafine.ui import progress

T = TypeVar("T")


async def debate_split(session: Session, iteration: int, split: str) -> None:
    """Debate a split. Train debates of iteration k use the models of k-1 (the base models for
    k=1); eval debates of iteration k use its tuned models, and iteration 0 the base models."""
    run = session.run
    stage = debate_stage(run, iteration, split)
    if stage.skip("already debated"):
        return
    if split == "train" and iteration < 1:
        raise MafineError("train debates belong to iterations 1 and later")
    models_from = iteration - 1 if split == "train" else iteration
    agents = roster(load_records(run, models_from), run.config)
    problems = load_problems(run, split)
    with stage.record() as counters:
        generator = Generator(
            session.provider,
            session.journal,
            sampling(run.config),
            run.config.seed,
            counters,
            empty_limit=run.config.provider.empty_response_limit,
        )
        await run_debates(
            run,
            stage.name,
            problems,
            agents,
            generator,
            session.grader,
            run.transcripts(iteration, split),
            TieBreak(run.config.seed, session.method, iteration, split),
        )
    report_usage(stage.name, counters)


async def run_debates(
    run: RunDir,
    name: str,
    problems: Sequence[Problem],
    agents: Sequence[AgentModels],
    generator: Generator,
    grader: Grader,
    output: Path,
    ties: TieBreak,
) -> None:
    """Debate every problem (resuming from a partial file) and publish the transcripts."""
    partial = output.with_name(f"{output.stem}.partial.jsonl")
    log = AppendLog(partial)
    offsets = {row.problem_id: offset for offset, row in iter_log(partial, Transcript)}
    pending = iter([p for p in problems if p.id not in offsets])
    try:
        with progress(name, len(problems)) as bar:
            bar.advance(len(problems) - sum(1 for p in problems if p.id not in offsets))

            async def worker() -> None:
                for problem in pending:
                    transcript = await debate_problem(
                        problem, agents, run.config, generator, grader, ties
                    )
                    offsets[problem.id] = log.append(transcript)
                    bar.advance()

            await gather_or_stop(*(worker() for _ in range(generator.provider.max_concurrency)))
    finally:
        log.close()
    write_rows(output, (read_at(partial, offsets[p.id], Transcript) for p in problems))
    partial.unlink(missing_ok=True)


async def gather_or_stop(*work: Awaitable[T]) -> list[T]:
    """`asyncio.gather`, except that when one fails (or the stage is stopped) the others are
    stopped too and awaited before the failure is raised: their answers in flight are
    journaled (see `Generator.complete`), and none is left running unowned."""
    tasks = [asyncio.ensure_future(item) for item in work]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


async def debate_problem(
    problem: Problem,
    agents: Sequence[AgentModels],
    config: Config,
    generator: Generator,
    grader: Grader,
    ties: TieBreak,
) -> Transcript:
    prompts = config.prompts
    question = Message(role="user", content=render(prompts.question, question=problem.question))
    first = await gather_or_stop(
        *(generator.complete(a.generator, [question], a.agent) for a in agents)
    )
    traces = [
        AgentTrace(
            agent=a.agent,
            has_critic=a.critic is not None,
            turns=[_turn(1, "generator", a.generator, [question], reply, config)],
        )
        for a, reply in zip(agents, first, strict=True)
    ]
    summaries: list[Summary] = []
    for round_number in range(2, config.debate.rounds + 1):
        latest = [trace.turns[-1].response for trace in traces]
        critics = [a for a in agents if a.critic is not None]
        results = await gather_or_stop(
            *(
                _critique(problem, a, traces[a.agent], latest, round_number, config, generator)
                for a in critics
            )
        )
        for agent, summary, turn in results:
            if summary is not None:
                summaries.append(summary)
            traces[agent].turns.append(turn)
    finals = [trace.final_answer for trace in traces]
    rng = ties.rng(problem.id)
    # A symbolic grader waits on its worker processes: keep that off the event loop.
    majority, votes = await asyncio.to_thread(majority_vote, finals, grader, rng)
    return Transcript(
        problem_id=problem.id,
        question=problem.question,
        gold=problem.answer,
        agents=traces,
        summaries=summaries,
        majority=majority,
        votes=votes,
    )


async def _critique(
    problem: Problem,
    agent: AgentModels,
    trace: AgentTrace,
    latest: list[str],
    round_number: int,
    config: Config,
    generator: Generator,
) -> tuple[int, Summary | None, Turn]:
    """One critic turn: the critic continues its own agent's conversation with advice."""
    prompts = config.prompts
    others = format_responses([text for index, text in enumerate(latest) if index != agent.agent])
    summary = None
    if config.debate.summarize:
        request = [
            Message(
                role="user",
                content=render(prompts.summarize, question=problem.question, responses=others),
            )
        ]
        digest = await generator.complete(config.provider.model, request, agent.agent)
        summary = Summary(
            round=round_number,
            agent=agent.agent,
            model=config.provider.model,
            messages=request,
            text=digest.text,
            usage=digest.usage,
        )
        advice = render(prompts.debate_summary, summary=digest.text)
    else:
        advice = render(prompts.debate_responses, responses=others)
    last = trace.turns[-1]
    history = [*last.messages, Message(role="assistant", content=last.response or "(no response)")]
    messages = [*history, Message(role="user", content=advice)]
    assert agent.critic is not None
    reply = await generator.complete(agent.critic, messages, agent.agent)
    return (
        agent.agent,
        summary,
        _turn(round_number, "critic", agent.critic, messages, reply, config),
    )


def format_responses(responses: Sequence[str]) -> str:
    return "\n\n".join(
        f"Solution {number}:\n{text.strip() or '(no response)'}"
        for number, text in enumerate(responses, start=1)
    )


def _turn(
    round_number: int,
    role: str,
    model: str,
    messages: list[Message],
    reply: Completion,
    config: Config,
) -> Turn:
    extraction = extract_answer(reply.text, config.grading.fallbacks)
    return Turn(
        round=round_number,
        role=role,
        model=model,
        messages=messages,
        response=reply.text,
        answer=extraction.answer,
        answer_rule=extraction.rule,
        finish_reason=reply.finish_reason,
        usage=reply.usage,
    )
