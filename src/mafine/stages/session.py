"""A session: an open run directory with its provider, journal and grader, which the stages
share; and the sessions of the compared methods beside it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, ExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass

from mafine.config import Config, variant_config
from mafine.grading import Grader, get_grader
from mafine.journal import Journal
from mafine.methods import MAIN_METHOD, METHODS
from mafine.providers import open_provider
from mafine.providers.base import Provider, Sampling
from mafine.rundir import RunDir


@dataclass
class Session:
    """An open run directory with its provider, journal and grader; `method` is the method
    whose run it is (the main run's, or a compared method's name), which seeds tie-breaks."""

    run: RunDir
    provider: Provider
    journal: Journal
    grader: Grader
    method: str = MAIN_METHOD


@asynccontextmanager
async def open_session(run: RunDir, provider: Provider | None = None) -> AsyncIterator[Session]:
    """The run's session. The provider is the configured one, opened here and closed on exit,
    unless `provider` is given: then that one is used and left open (the caller owns it; tests
    give a scripted provider this way)."""
    config = run.config
    journal = Journal(run.journal)
    try:
        async with AsyncExitStack() as stack:
            if provider is None:
                provider = await stack.enter_async_context(
                    open_provider(config.provider, config.seed, run.root)
                )
            grader = stack.enter_context(get_grader(config.grading))
            yield Session(run, provider, journal, grader)
    finally:
        journal.close()


@contextmanager
def variant_runs(run: RunDir, base_only: bool = False) -> Iterator[dict[str, RunDir]]:
    """The compared methods' run directories (only the methods that tune nothing with
    `base_only`), opened (and locked) beside the run."""
    names = run.config.evaluation.compare
    if base_only:
        names = [name for name in names if METHODS.get(name).base_only]
    with ExitStack() as stack:
        variants = {
            name: stack.enter_context(RunDir.open(variant_config(run.config, name)))
            for name in names
        }
        for variant in variants.values():
            variant.share_journal(run.journal)  # their requests go to the run's journal
            variant.count_in(run)  # and their spend to the run's totals
        yield variants


@asynccontextmanager
async def variant_sessions(
    session: Session, base_only: bool = False
) -> AsyncIterator[dict[str, Session]]:
    """Sessions for the compared methods (only those that tune nothing with `base_only`): their
    own run directories, the shared provider, journal and grader."""
    with variant_runs(session.run, base_only) as runs:
        yield {
            name: Session(run, session.provider, session.journal, session.grader, name)
            for name, run in runs.items()
        }


def sampling(config: Config) -> Sampling:
    return Sampling(
        temperature=config.sampling.temperature,
        top_p=config.sampling.top_p,
        max_output_tokens=config.sampling.max_output_tokens,
    )
