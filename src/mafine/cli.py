"""The `mafine` command line: thin commands that hand off to the pipeline.

Heavy packages (google-genai, datasets, torch) are imported inside the commands, so
`mafine --help` stays fast.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

if TYPE_CHECKING:
    from mafine.config import Config
    from mafine.pipeline import Session
    from mafine.rundir import RunDir

app = typer.Typer(
    name="mafine",
    help="Multiagent fine-tuning: agents debate, each is tuned on its own slice, the society "
    "is evaluated against single-model baselines.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

ConfigArg = Annotated[
    Path, typer.Argument(help="The experiment's YAML config.", show_default=False)
]
SetOption = Annotated[
    Optional[list[str]],  # noqa: UP045 - typer reads this annotation at runtime
    typer.Option("--set", help="Override a config value: key.path=value (repeatable)."),
]
IterationOption = Annotated[int, typer.Option("--iteration", "-i", help="Iteration (1-based).")]


def _fail(message: str, code: int = 1) -> None:
    from mafine.ui import error_console

    error_console.print(f"[red]error:[/] {message}", soft_wrap=True)
    raise typer.Exit(code)


def _guarded(body: Callable[[], Any]) -> Any:
    """Run a command body; known errors become one line on stderr and a non-zero exit."""
    from mafine.errors import MafineError

    try:
        return body()
    except MafineError as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        _fail("interrupted; run the same command again to resume", 130)


def _load(config: Path, overrides: list[str] | None) -> Config:
    from mafine.config import load_config

    return load_config(config, overrides)


def _with_run(config_path: Path, overrides: list[str] | None, work: Callable[[RunDir], Any]) -> Any:
    from mafine.rundir import RunDir

    def body() -> Any:
        config = _load(config_path, overrides)
        with RunDir.open(config) as run:
            return work(run)

    return _guarded(body)


def _with_session(
    config_path: Path,
    overrides: list[str] | None,
    work: Callable[[Session], Coroutine[Any, Any, Any]],
) -> Any:
    from mafine.pipeline import open_session

    def in_run(run: RunDir) -> Any:
        async def main() -> Any:
            async with open_session(run) as session:
                return await work(session)

        return asyncio.run(main())

    return _with_run(config_path, overrides, in_run)


@app.command()
def prepare(config: ConfigArg, set_: SetOption = None) -> None:
    """Draw the train and eval problems (disjoint) into the run directory."""
    from mafine.stages.prepare import prepare as run_prepare

    _with_run(config, set_, run_prepare)


@app.command()
def debate(
    config: ConfigArg,
    set_: SetOption = None,
    iteration: IterationOption = 1,
    split: Annotated[str, typer.Option(help="train or eval.")] = "train",
) -> None:
    """Debate a split: train with the previous iteration's models, eval with this one's."""
    from mafine.pipeline import debate_stage

    if split not in ("train", "eval"):
        _fail(f"--split must be train or eval, not {split!r}", 2)
    _with_session(config, set_, lambda session: debate_stage(session, iteration, split))


@app.command("build-sft")
def build_sft(config: ConfigArg, set_: SetOption = None, iteration: IterationOption = 1) -> None:
    """Select each agent model's fine-tuning data from the train debates."""
    from mafine.grading import get_grader
    from mafine.stages.build_sft import build_sft as run_build

    _with_run(config, set_, lambda run: run_build(run, get_grader(run.config.grading), iteration))


@app.command()
def finetune(config: ConfigArg, set_: SetOption = None, iteration: IterationOption = 1) -> None:
    """Tune every agent model with data (one job each); reruns poll, never resubmit."""
    from mafine.pipeline import finetune_stage

    _with_session(config, set_, lambda session: finetune_stage(session, iteration))


@app.command()
def evaluate(
    config: ConfigArg,
    set_: SetOption = None,
    iteration: Annotated[
        int, typer.Option("--iteration", "-i", help="Iteration to evaluate; 0: baselines only.")
    ] = 1,
) -> None:
    """Debate the eval split with the iteration's models and compare with the baselines."""
    from mafine.pipeline import evaluate_stage

    _with_session(config, set_, lambda session: evaluate_stage(session, iteration))


@app.command()
def run(config: ConfigArg, set_: SetOption = None) -> None:
    """Every stage of every iteration; finished stages are skipped, interrupted ones resume."""
    from mafine.pipeline import run_all

    _with_session(config, set_, run_all)


@app.command("fake-gemini")
def fake_gemini(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1 (0: a free one).")] = 8765,
    error_rate: Annotated[float, typer.Option(help="Share of wrong first answers.")] = 0.25,
    adopt_majority: Annotated[
        float, typer.Option(help="Chance a critic adopts the others' majority.")
    ] = 0.8,
) -> None:
    """Serve the offline fake Gemini on loopback, for CI or demos of a `gemini` config."""

    def body() -> None:
        from mafine.config import FakeSettings
        from mafine.providers.fake_gemini import FakeGemini

        settings = FakeSettings(error_rate=error_rate, adopt_majority=adopt_majority)
        FakeGemini(settings, port=port).serve_forever()

    _guarded(body)


def main() -> None:  # pragma: no cover - console entry point alias
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
