"""The `mafine` command line: thin commands that hand off to the pipeline.

Heavy packages (google-genai, datasets, torch) are imported inside the commands, so
`mafine --help` stays fast.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from mafine.guard import OneLineUsageErrors

if TYPE_CHECKING:
    from mafine.config import Config
    from mafine.grading.settings import GradingConfig
    from mafine.rundir import RunDir
    from mafine.stages.session import Session

app = typer.Typer(
    cls=OneLineUsageErrors,
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
    list[str] | None,
    typer.Option("--set", help="Override a config value: key.path=value (repeatable)."),
]
IterationOption = Annotated[
    int, typer.Option("--iteration", "-i", min=1, help="Iteration (1 to the config's iterations).")
]
TokensOption = {"min": 0, "max": 10_000_000}  # an assumed length: a count of tokens


def _fail(message: str, code: int = 1) -> None:
    from mafine.guard import fail

    fail(message, code)


def _guarded(body: Callable[[], Any]) -> Any:
    """Run a command body inside the one error guard (mafine.guard): one line, no traceback."""
    from mafine.guard import guarded

    return guarded(body)


def _print_version(asked: bool) -> None:
    if asked:
        from importlib.metadata import version

        typer.echo(f"mafine {version('mafine')}")
        raise typer.Exit()


@app.callback()
def _options(
    debug: Annotated[
        bool, typer.Option("--debug", help="Show the traceback of an error (or MAFINE_DEBUG=1).")
    ] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and stop."
        ),
    ] = False,
) -> None:
    from mafine import guard

    guard.debug_option = debug


def _load(config: Path, overrides: list[str] | None) -> Config:
    from mafine.config import load_config

    return load_config(config, overrides)


def _check_iteration(config: Config, iteration: int | None) -> None:
    """Every command's `--iteration` names an iteration of the config: at most `iterations`
    (the lower bound, 1, or 0 for evaluate's baselines, is the option's own range); past it
    is a usage error, exit 2, like the option's own range."""
    if iteration is not None and iteration > config.iterations:
        last = config.iterations
        _fail(
            f"--iteration {iteration} is past the config's iterations ({last}); give at most "
            f"{last}, or raise it with --set iterations={iteration}",
            2,
        )


def _with_run(
    config_path: Path,
    overrides: list[str] | None,
    work: Callable[[RunDir], Any],
    iteration: int | None = None,
) -> Any:
    from mafine.rundir import RunDir, locate_relative_run

    def body() -> Any:
        config = _load(config_path, overrides)
        _check_iteration(config, iteration)
        locate_relative_run(config, config_path)
        with RunDir.open(config) as run:
            return work(run)

    return _guarded(body)


def _with_session(
    config_path: Path,
    overrides: list[str] | None,
    work: Callable[[Session], Coroutine[Any, Any, Any]],
    iteration: int | None = None,
) -> Any:
    from mafine.stages.session import open_session

    def in_run(run: RunDir) -> Any:
        async def main() -> Any:
            async with open_session(run) as session:
                return await work(session)

        from mafine.guard import run_async

        return run_async(main)

    return _with_run(config_path, overrides, in_run, iteration)


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
    from mafine.stages.debate import debate_split

    if split not in ("train", "eval"):
        _fail(f"--split must be train or eval, not {split!r}", 2)
    _with_session(config, set_, lambda session: debate_split(session, iteration, split), iteration)


@app.command("build-sft")
def build_sft(config: ConfigArg, set_: SetOption = None, iteration: IterationOption = 1) -> None:
    """Select each agent model's fine-tuning data from the train debates."""
    from mafine.grading import get_grader
    from mafine.stages.build_sft import build_sft as run_build

    _with_run(
        config,
        set_,
        lambda run: run_build(run, get_grader(run.config.grading), iteration),
        iteration,
    )


@app.command()
def finetune(config: ConfigArg, set_: SetOption = None, iteration: IterationOption = 1) -> None:
    """Tune every agent model with data (one job each); reruns poll, never resubmit."""
    from mafine.stages.finetune import finetune as run_finetune

    _with_session(
        config,
        set_,
        lambda session: run_finetune(session.run, session.provider, iteration),
        iteration,
    )


@app.command()
def evaluate(
    config: ConfigArg,
    set_: SetOption = None,
    iteration: Annotated[
        int,
        typer.Option("--iteration", "-i", min=0, help="Iteration to evaluate; 0: baselines only."),
    ] = 1,
    regrade: Annotated[
        bool,
        typer.Option(
            "--regrade",
            help="Recompute a finished run's results from its transcripts with --grader, "
            "sending no request; written to RUN_DIR/regrade/GRADER/.",
        ),
    ] = False,
    grader: Annotated[
        str | None,
        typer.Option(help="Grader for --regrade (a registered grader, `mafine plugins`)."),
    ] = None,
) -> None:
    """Debate the eval split with the iteration's models and compare with the baselines."""
    if not regrade:
        if grader is not None:
            _fail("--grader goes with --regrade (the run's own grader is grading.grader)", 2)
        from mafine.pipeline import evaluate_stage

        _with_session(config, set_, lambda session: evaluate_stage(session, iteration), iteration)
        return

    def regrade_run(run: RunDir) -> None:
        from mafine.grading import get_grader
        from mafine.guard import run_async
        from mafine.stages.evaluate import regrade as regrade_results
        from mafine.stages.session import variant_runs

        grading = _grading(run.config.grading, grader)
        with get_grader(grading) as chosen, variant_runs(run) as variants:
            run_async(lambda: regrade_results(run, chosen, variants))

    _with_run(config, set_, regrade_run)


@app.command()
def grade(
    file: Annotated[
        Path,
        typer.Argument(
            help="JSONL of {gold, response} rows, or a run's transcripts (*-debate.jsonl).",
            show_default=False,
        ),
    ],
    grader: Annotated[
        str, typer.Option(help="A registered grader (`mafine plugins` lists them).")
    ] = "string",
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write one graded row per input row, in order."),
    ] = None,
    seed: Annotated[
        int, typer.Option(help="Seed of the tie-breaks when re-voting transcripts (the run's).")
    ] = 0,
    fallback: Annotated[
        list[str] | None,
        typer.Option(
            help="Rule tried when a response has no boxed answer: final_answer or last_number."
        ),
    ] = None,
    option: Annotated[
        list[str] | None,
        typer.Option(
            "--option",
            help="An option of the grader: key=value (repeatable), as in grading.options.",
        ),
    ] = None,
) -> None:
    """Grade responses with any grader and print the accuracy; sends no request."""

    def body() -> None:
        from mafine.grade_file import grade_file
        from mafine.grading.settings import GradingConfig
        from mafine.outputs import check_output
        from mafine.ui import console

        grading = _grading(GradingConfig(), grader, fallback, option)
        with _exclusive(output):
            if output is not None:
                check_output(output, [file])
            graded = grade_file(file, grading, output, seed=seed)
        console.print(graded.describe(), markup=False)

    _guarded(body)


def _exclusive(output: Path | None) -> AbstractContextManager[None]:
    """Hold an output file for this command: a second command writing it at once is refused
    (nullcontext without an output)."""
    from contextlib import nullcontext

    from mafine.outputs import exclusive

    return nullcontext() if output is None else exclusive(output)


def _grading(
    base: GradingConfig,
    grader: str | None,
    fallbacks: list[str] | None = None,
    options: list[str] | None = None,
) -> GradingConfig:
    """The grading config with a grader, its fallbacks and its options (`key=value`, values
    read as YAML) chosen on the command line."""
    from pydantic import ValidationError

    from mafine.errors import MafineError
    from mafine.grading.settings import GradingConfig
    from mafine.schema import describe_validation_error

    raw = base.model_dump()
    if grader is not None:
        raw["grader"] = grader
    if fallbacks:
        raw["fallbacks"] = fallbacks
    for item in options or []:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise MafineError(f"--option expects key=value, got {item!r}")
        chosen = raw.setdefault("options", {}).setdefault(raw["grader"], {})
        chosen[key.strip()] = _yaml_value(text)
    try:
        return GradingConfig.model_validate(raw)
    except ValidationError as exc:
        raise MafineError(f"grading: {describe_validation_error(exc)}") from None


def _yaml_value(text: str) -> Any:
    """`text` read as a YAML scalar (a number, a boolean), or the text itself."""
    import yaml

    from mafine.config_checks import parse_yaml

    try:
        return parse_yaml(text) if text.strip() else text
    except yaml.YAMLError:
        return text


@app.command()
def run(config: ConfigArg, set_: SetOption = None) -> None:
    """Every stage of every iteration; finished stages are skipped, interrupted ones resume."""
    from mafine.pipeline import run_all

    _with_session(config, set_, run_all)


@app.command()
def report(
    runs: Annotated[
        list[Path],
        typer.Argument(help="Run directories (or their metrics.json).", show_default=False),
    ],
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Comparison markdown [default with several runs: comparison.md in their "
            "common parent; with one run: none].",
        ),
    ] = None,
) -> None:
    """Finished runs side by side, grouped by the config keys that differ; seeds aggregated."""

    def body() -> None:
        from mafine.analysis.compare import comparison_table, write_comparison
        from mafine.analysis.metrics import load_metrics
        from mafine.analysis.report import results_table
        from mafine.config import PACE_KEYS
        from mafine.outputs import check_output
        from mafine.ui import console

        if output is not None:
            check_output(output, runs)
        _refuse_repeated_runs(runs)

        if len(runs) == 1:
            console.print(results_table(load_metrics(runs[0])))
            if output is None:
                return
        path, comparison = write_comparison(runs, output, pace_keys=PACE_KEYS)
        if len(runs) > 1:
            console.print(comparison_table(comparison))
        console.print(f"comparison: {path}", markup=False)

    _guarded(body)


def _refuse_repeated_runs(runs: list[Path]) -> None:
    """One run given twice (as itself, through a link, or as its metrics.json) would count
    its results twice in the comparison's seed aggregates."""
    from mafine.errors import MafineError

    seen: dict[Path, Path] = {}
    for given in runs:
        resolved = given.resolve()
        if resolved.name == "metrics.json" and not resolved.is_dir():
            resolved = resolved.parent
        if resolved in seen:
            raise MafineError(f"{given} and {seen[resolved]} are the same run; give each run once")
        seen[resolved] = given


@app.command()
def sweep(
    config: ConfigArg,
    grid: Annotated[
        list[str] | None,
        typer.Option("--grid", help="A swept key and its values: key.path=v1,v2 (repeatable)."),
    ] = None,
    seeds: Annotated[
        str | None,
        typer.Option("--seeds", help="Seeds to run every point with, e.g. 0,1,2."),
    ] = None,
    set_: SetOption = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="Comparison markdown [default: RUN_DIR/sweep/comparison.md]."
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print each point's `mafine run` line; run nothing.")
    ] = False,
) -> None:
    """Run a grid of configs into RUN_DIR/sweep/<key=value,...>, skipping finished points."""

    def body() -> None:
        from mafine.outputs import check_output
        from mafine.sweep import sweep as run_sweep

        if not grid and seeds is None:
            _fail("give at least one --grid key=v1,v2 or --seeds", 2)
        if output is not None:
            check_output(output, [config])
        result = run_sweep(config, grid or [], seeds, set_ or [], output=output, dry_run=dry_run)
        if result.failed:
            names = ", ".join(p.point.name for p in result.failed)
            first = result.failed[0]
            why = f"{first.point.name}: {first.error}" if result.failed[1:] else first.error
            others = "; the others' errors are shown above" if result.failed[1:] else ""
            _fail(
                f"{len(result.failed)} point(s) failed: {names} ({why}{others}); fix that and "
                "run the same sweep again (finished points are skipped)"
            )

    _guarded(body)


@app.command()
def estimate(
    config: ConfigArg,
    set_: SetOption = None,
    response_tokens: Annotated[
        int, typer.Option(**TokensOption, help="Assumed length of every agent response, in tokens.")
    ] = 300,
    summary_tokens: Annotated[
        int, typer.Option(**TokensOption, help="Assumed length of every summary.")
    ] = 200,
    thinking_tokens: Annotated[
        int,
        typer.Option(
            **TokensOption, help="Assumed thinking tokens per response (billed as output)."
        ),
    ] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the estimate as JSON.")] = False,
) -> None:
    """Predict a whole run's requests, tokens and cost (standard and batch); sends nothing."""

    def body() -> None:
        import json

        from mafine.estimate import Assumptions, render_estimate
        from mafine.estimate import estimate as run_estimate
        from mafine.ui import console

        loaded = _load(config, set_)
        result = run_estimate(loaded, Assumptions(response_tokens, summary_tokens, thinking_tokens))
        if as_json:
            print(json.dumps(result.as_dict(), indent=2))
            return
        for renderable in render_estimate(result, loaded):
            console.print(renderable)

    _guarded(body)


@app.command()
def check(config: ConfigArg, set_: SetOption = None) -> None:
    """Run the provider's preflight (Gemini: the fewest, cheapest real calls), then the estimate."""

    def body() -> None:
        from mafine.check import check as run_check
        from mafine.check import render
        from mafine.ui import console

        loaded = _load(config, set_)
        report = run_check(loaded)
        for renderable in render(report, loaded):
            console.print(renderable, soft_wrap=True)
        if not report.ok:
            failed = [outcome.name for outcome in report.outcomes if not outcome.ok]
            _fail(f"check failed: {', '.join(failed)} (see above); fix that and check again")

    _guarded(body)


@app.command()
def plugins(
    markdown: Annotated[bool, typer.Option(help="As a markdown table.")] = False,
) -> None:
    """List what is registered (providers, data sources, hub data sets, graders, compared
    methods) and which plugin registered each; a plugin that failed to load says so on stderr."""

    def body() -> None:
        from mafine.catalog import markdown as as_markdown
        from mafine.catalog import rows
        from mafine.ui import console

        found = rows()
        if markdown:
            print(as_markdown(found))
            return
        for row in found:
            console.print(f"{row.kind:20} {row.name:16} {row.source:24} {row.what}")

    _guarded(body)


@app.command()
def serve(
    config: ConfigArg,
    set_: SetOption = None,
    run: Annotated[bool, typer.Option("--run", help="Start the server instead.")] = False,
) -> None:
    """Print (or --run) the vLLM server command a vllm config needs (docs/vllm.md)."""

    def body() -> None:
        import os
        import shlex

        from mafine.errors import MafineError
        from mafine.providers.vllm.serve import command, environment

        loaded = _load(config, set_)
        if loaded.provider.name != "vllm":
            raise MafineError(f"{config}: provider.name is {loaded.provider.name}, not vllm")
        argv, env = command(loaded), environment()
        if not run:
            print(" ".join([*(f"{k}={v}" for k, v in env.items()), *map(shlex.quote, argv)]))
            return
        os.execvpe(argv[0], argv, {**os.environ, **env})

    _guarded(body)


@app.command("fake-gemini")
def fake_gemini(
    port: Annotated[
        int, typer.Option(min=0, max=65535, help="Port on 127.0.0.1 (0: a free one).")
    ] = 8765,
    error_rate: Annotated[float, typer.Option(help="Share of wrong first answers.")] = 0.25,
    adopt_majority: Annotated[
        float, typer.Option(help="Chance a critic adopts the others' majority.")
    ] = 0.8,
    latency: Annotated[float, typer.Option(help="Seconds added to every generation.")] = 0.0,
    fault_rate: Annotated[
        float, typer.Option(help="Share of generation attempts answered with a fault.")
    ] = 0.0,
    fault_kinds: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated faults to draw from (default: every kind; a wrong name "
            "lists them)."
        ),
    ] = None,
    retry_delay: Annotated[float, typer.Option(help="RetryInfo delay of injected 429s.")] = 1.0,
    hang: Annotated[float, typer.Option(help="Seconds an injected hang lasts.")] = 30.0,
    daily_quota: Annotated[
        bool, typer.Option(help="Answer every generation with a per-day quota 429.")
    ] = False,
    requests_per_minute: Annotated[
        int | None,
        typer.Option(help="Answer 429 past this many generations in 60 s."),
    ] = None,
    state_dir: Annotated[
        Path | None,
        typer.Option(
            help="Keep objects, tuning and batch jobs and tuned models here, so they outlive "
            "the server (default: in memory only).",
            file_okay=False,
        ),
    ] = None,
) -> None:
    """Serve the offline fake Gemini on loopback, for CI or demos of a `gemini` config."""

    # Each option and the settings field it sets, so an error names the option.
    options = {
        "--error-rate": ("error_rate", error_rate),
        "--adopt-majority": ("adopt_majority", adopt_majority),
        "--latency": ("latency_s", latency),
        "--fault-rate": ("fault_rate", fault_rate),
        "--retry-delay": ("retry_delay_s", retry_delay),
        "--hang": ("hang_s", hang),
        "--daily-quota": ("daily_quota", daily_quota),
        "--requests-per-minute": ("requests_per_minute", requests_per_minute),
    }
    if fault_kinds is not None:
        kinds = [k.strip() for k in fault_kinds.split(",") if k.strip()]
        options["--fault-kinds"] = ("fault_kinds", kinds)

    def body() -> None:
        from pydantic import ValidationError

        from mafine.errors import MafineError
        from mafine.guard import Terminated
        from mafine.providers.fake_gemini import FakeGemini
        from mafine.providers.fake_gemini.state import prepare_state_dir
        from mafine.providers.settings import FakeSettings
        from mafine.ui import console

        try:
            settings = FakeSettings(**{field: value for field, value in options.values()})
        except ValidationError as exc:
            problem = exc.errors()[0]
            field = str(problem["loc"][0]) if problem["loc"] else ""
            option = next((o for o, (f, _) in options.items() if f == field), "an option")
            given = options[option][1] if option in options else None
            _fail(f"{option} {given}: {problem['msg']}; see `mafine fake-gemini --help`", 2)
        if state_dir is not None:
            try:
                prepare_state_dir(state_dir, "--state-dir")
            except MafineError as exc:
                _fail(str(exc), 2)
        try:
            fake = FakeGemini(settings, port=port, state_dir=state_dir)
            try:
                fake.start()
            except OSError as exc:
                raise MafineError(
                    f"cannot serve on 127.0.0.1:{port} ({exc.strerror or exc}); choose another "
                    "--port, or --port 0 for a free one"
                ) from None
            console.print(f"fake Gemini on {fake.url} (Ctrl-C stops it)", markup=False)
            fake.serve_forever()
        except Terminated:
            _fail("fake Gemini stopped (terminated)", 143)
        except KeyboardInterrupt:
            _fail("fake Gemini stopped (interrupted)", 130)

    _guarded(body)
