"""Plugins from outside the tree: the example plugin package (examples/) installed for real with
pip into a folder that a `mafine` subprocess has on its path, so importlib.metadata discovers it,
and run through the CLI with one extension of each kind; broken plugins cost one line each;
plugins load only when a registry is read; provider-neutral check and estimate."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import pytest
import yaml
from pydantic import field_validator

from mafine import catalog
from mafine.config import config_differences
from mafine.providers import closing
from mafine.providers.base import Capabilities
from mafine.providers.registry import PROVIDERS, ProviderEntry
from mafine.schema import Strict, mutable_field
from tests.conftest import write_config
from tests.scripted import ScriptedProvider

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "mafine-example-plugin"
ARCHITECTURE = ROOT / "docs" / "architecture.md"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example plugin installed by pip (no network, no build isolation) into a folder of
    its own: the shared venv is untouched, a subprocess given the folder discovers it."""
    work = tmp_path_factory.mktemp("example")
    source = work / "source"
    shutil.copytree(EXAMPLE, source)  # the build writes into the source tree: not into ours
    target = work / "site"
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation"]
    subprocess.run(
        [*pip, "--no-index", "--target", str(target), str(source)], check=True, timeout=300
    )
    assert list(target.glob("mafine_example_plugin-*.dist-info"))
    return target


def mafine(path: Path | None, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """`python -m mafine ARGS` with `path` (an install folder) on its PYTHONPATH."""
    env = {**os.environ, "PYTHONPATH": str(path) if path else ""}
    env.pop("MAFINE_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-m", "mafine", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=300,
    )


def example_config(directory: Path, **provider: object) -> Path:
    """A run that names all four of the example's extensions."""
    raw = {
        "seed": 0,
        "iterations": 1,
        "run_dir": str(directory / "run"),
        "data": {"source": {"kind": "countdown", "start": 40}, "train_size": 8, "eval_size": 6},
        "agents": {"count": 2, "critics": 1},
        "debate": {"rounds": 2, "summarize": False},
        "grading": {"grader": "within", "options": {"within": {"tolerance": 0}}},
        "evaluation": {"embedder": "none", "compare": ["greedy"]},
        "finetune": {"poll_seconds": 0.01},
        "provider": {"name": "calculator", "model": "calc-1", "calculator": provider},
    }
    path = directory / "example.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_the_example_plugin_runs_all_four_kinds_through_the_cli(installed, tmp_path) -> None:
    listed = mafine(installed, "plugins")
    assert listed.returncode == 0, listed.stderr
    for kind, name in [
        ("provider.name", "calculator"),
        ("data.source.kind", "countdown"),
        ("grading.grader", "within"),
        ("evaluation.compare", "greedy"),
    ]:
        line = next(line for line in listed.stdout.splitlines() if f" {name} " in line)
        assert line.startswith(kind) and "mafine-example-plugin" in line
    result = mafine(installed, "run", str(example_config(tmp_path)))
    assert result.returncode == 0, result.stderr
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    header = metrics["header"]
    assert header["provider"] == "calculator" and header["grader"]["name"] == "within"
    assert header["data"].startswith("countdown from 40")
    labels = {m["key"]: m["label"] for m in metrics["methods"]}
    assert labels["greedy"] == "Multiagent FT, greedy decoding"
    # the calculator slips on odd questions; the within grader counts them wrong
    base = next(m for m in metrics["methods"] if m["key"] == "base")
    assert 0 < sum(base["correct"]) < len(base["correct"])
    # mafine's own tree without the plugin: the same config is refused in one line
    (tmp_path / "bare").mkdir()
    refused = mafine(None, "prepare", str(example_config(tmp_path / "bare")))
    assert refused.returncode != 0
    assert (
        refused.stderr.count("\n") == 1 and "unknown data source kind 'countdown'" in refused.stderr
    )


def test_check_and_estimate_of_a_plugin_provider_say_nothing_about_gemini(
    installed, tmp_path
) -> None:
    config = str(example_config(tmp_path))
    checked = mafine(installed, "check", config)
    assert checked.returncode == 0, checked.stderr
    assert "ok   calculator: answered 'The answer is \\\\boxed{3}.'" in checked.stdout
    estimated = mafine(installed, "estimate", config)
    assert estimated.returncode == 0, estimated.stderr
    for output in (checked.stdout, estimated.stdout):
        assert "requests" in output
        for word in ("gemini", "vertex", "batch mode", "pacing"):
            assert word not in output.lower(), word


def test_the_example_graders_options_on_the_command_line(installed, tmp_path) -> None:
    answers = tmp_path / "answers.jsonl"
    rows = [{"gold": "10", "response": "\\boxed{10.4}"}, {"gold": "3", "response": "\\boxed{5}"}]
    answers.write_text("".join(json.dumps(row) + "\n" for row in rows))
    strict = mafine(installed, "grade", str(answers), "--grader", "within")
    loose = mafine(
        installed, "grade", str(answers), "--grader", "within", "--option", "tolerance=0.5"
    )
    assert strict.returncode == loose.returncode == 0, strict.stderr + loose.stderr
    assert "0/2 responses correct" in strict.stdout and "1/2 responses correct" in loose.stdout
    bad = mafine(installed, "grade", str(answers), "--grader", "within", "--option", "tolerance=-1")
    assert bad.returncode != 0 and bad.stderr.count("\n") == 1
    assert "within: tolerance: Input should be greater than or equal to 0" in bad.stderr
    unknown = mafine(installed, "grade", str(answers), "--grader", "within", "--option", "tol=1")
    assert "within: tol: unknown key" in unknown.stderr and unknown.stderr.count("\n") == 1


def dist_info(site: Path, name: str, value: str, module: str = "", code: str = "") -> Path:
    """A distribution with one `mafine.plugins` entry point, written by hand as an installer
    would (a dist-info folder beside its module), so importlib.metadata discovers it."""
    info = site / f"{name.replace('-', '_')}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[mafine.plugins]\nmain = {value}\n")
    if module:
        (site / f"{module}.py").write_text(code)
    return site


def test_broken_plugins_are_one_line_each_and_mafine_runs_without_them(tmp_path) -> None:
    site = tmp_path / "site"
    dist_info(site, "needs-missing", "needs_missing", "needs_missing", "import not_installed_x\n")
    dist_info(
        site,
        "half-done",
        "half_done:register",
        "half_done",
        "from mafine.grading.registry import GRADERS, GraderEntry\n"
        "def register():\n"
        "    GRADERS.register(GraderEntry('half', 'mafine.grading.plain:StringGrader', 'x'))\n"
        "    raise RuntimeError('the second half failed')\n",
    )
    dist_info(
        site,
        "takes-fake",
        "takes_fake",
        "takes_fake",
        "from mafine.providers.base import Capabilities\n"
        "from mafine.providers.registry import PROVIDERS, ProviderEntry\n"
        "PROVIDERS.register(ProviderEntry('fake', 'x:y', lambda c: Capabilities()))\n",
    )
    config = write_config(tmp_path)
    result = mafine(site, "prepare", str(config), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 3, result.stderr
    assert lines[0] == (
        "mafine: plugin half-done:main (half_done:register) not loaded: RuntimeError: the "
        "second half failed; mafine runs without it"
    )
    assert lines[1].startswith("mafine: plugin needs-missing:main (needs_missing) not loaded: ")
    assert "No module named 'not_installed_x'" in lines[1]
    assert (
        "plugin takes-fake:main" in lines[2] and "provider 'fake' is already registered" in lines[2]
    )
    assert (tmp_path / "runs" / "exp" / "problems" / "eval.jsonl").exists()
    # what the failed plugin registered before failing is gone; the builtin fake is mafine's
    listed = mafine(site, "plugins")
    assert " half " not in listed.stdout
    fake = next(line for line in listed.stdout.splitlines() if " fake " in line)
    assert "mafine " in fake


def test_plugins_load_when_a_registry_is_read_never_for_help(tmp_path) -> None:
    marker = tmp_path / "loaded"
    site = dist_info(
        tmp_path / "site",
        "marks",
        "marks",
        "marks",
        f"from pathlib import Path\nPath({str(marker)!r}).write_text('x')\n",
    )
    assert mafine(site, "--help").returncode == 0
    assert mafine(site, "grade", "--help").returncode == 0
    assert not marker.exists()
    assert mafine(site, "plugins").returncode == 0
    assert marker.exists()


class PacedSettings(Strict):
    delay_s: float = mutable_field(0.0, ge=0.0)
    answer: str = "7"


def test_a_plugin_providers_mutable_keys_may_change_on_a_run(tmp_path) -> None:
    entry = ProviderEntry(
        "paced",
        open=closing(lambda config, seed, state_dir: ScriptedProvider()),
        capabilities=lambda config: Capabilities(tuning=True),
        settings=PacedSettings,
    )
    stored = {"provider": {"name": "paced", "paced": {"delay_s": 0.0, "answer": "7"}}}
    current = {"provider": {"name": "paced", "paced": {"delay_s": 5.0, "answer": "8"}}}
    with PROVIDERS.registered(entry):
        assert config_differences(stored, current) == ["provider.paced.answer"]


def test_a_plugin_providers_section_is_stored_with_its_defaults(cli: Callable, tmp_path) -> None:
    """A run whose config leaves `provider.paced` out resumes when the section is given with
    the same (default) values, as a builtin provider's run does."""
    entry = ProviderEntry(
        "paced",
        open=closing(lambda config, seed, state_dir: ScriptedProvider()),
        capabilities=lambda config: Capabilities(),
        settings=PacedSettings,
    )
    with PROVIDERS.registered(entry):
        path = write_config(tmp_path, provider={"name": "paced", "model": "m"})
        assert cli("prepare", path).exit_code == 0
        same = cli("prepare", path, "--set", "provider.paced.answer='7'")
        other = cli("prepare", path, "--set", "provider.paced.answer='8'")
    assert same.exit_code == 0, same.output
    assert other.exit_code != 0 and "differs in: provider.paced.answer" in other.stderr


class CheckedSettings(Strict):
    delay_s: float = mutable_field(0.0, ge=0.0)
    url_env: str = "PACED_BASE_URL"

    @field_validator("url_env")
    @classmethod
    def _a_name(cls, value: str) -> str:
        if not value.isupper():
            raise ValueError("give the NAME of a variable, such as PACED_BASE_URL")
        return value


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        ({"bogus": 1}, "provider.paced.bogus: unknown key"),
        ({"delay_s": -1}, "provider.paced.delay_s: Input should be greater than or equal to 0"),
        ({"url_env": "http://x"}, "provider.paced.url_env: give the NAME of a variable"),
    ],
)
def test_a_plugin_providers_settings_errors_name_their_section(
    cli: Callable, tmp_path, section, expected
) -> None:
    from tests.test_errors import assert_one_line_error

    entry = ProviderEntry(
        "paced",
        open=closing(lambda config, seed, state_dir: ScriptedProvider()),
        capabilities=lambda config: Capabilities(),
        settings=CheckedSettings,
    )
    with PROVIDERS.registered(entry):
        path = write_config(tmp_path, provider={"name": "paced", "model": "m", "paced": section})
        assert_one_line_error(cli("estimate", path), expected)


@pytest.mark.parametrize("provider", ["local", "untuned"])
def test_check_and_estimate_on_other_providers_say_nothing_about_gemini(
    cli: Callable, tmp_path, provider
) -> None:
    entry = ProviderEntry(
        "untuned",
        open=closing(lambda config, seed, state_dir: ScriptedProvider()),
        capabilities=lambda config: Capabilities(),
    )
    with PROVIDERS.registered(entry):
        path = write_config(tmp_path, provider={"name": provider, "model": "some-model"})
        checked = cli("check", path)
        estimated = cli("estimate", path)
    assert checked.exit_code == 0, checked.output
    assert f"ok   provider: {provider}: nothing remote to check" in checked.output
    for output in (checked.output, estimated.output):
        assert "requests" in output
        for word in ("gemini", "vertex", "batch", "pacing", "prices of", "cost"):
            assert word not in output.lower(), word


@pytest.mark.parametrize("tuning", [False, True])
def test_the_estimate_counts_what_the_run_sends_for_a_newcomers_methods(
    cli: Callable, tmp_path, tuning
) -> None:
    """The newcomer's greedy methods run at another temperature, so they reuse no journaled
    response; on a provider that cannot tune, the run and the estimate skip what tunes."""
    from mafine.config import load_config
    from mafine.estimate import estimate
    from mafine.methods import METHODS, Method, Tunes

    provider = ScriptedProvider(capabilities=Capabilities(tuning=tuning))
    entry = ProviderEntry(
        "newcomer",
        open=closing(lambda config, seed, state_dir: provider),
        capabilities=lambda config: Capabilities(tuning=tuning),
    )
    greedy = {"sampling": {"temperature": 0}}
    base = Method("greedy_base", "Greedy base", greedy, tunes=Tunes.NOTHING)
    tuned = Method("greedy_ft", "Multiagent FT, greedy", greedy)
    compare = ["greedy_base", "greedy_ft", "self_consistency"]
    with PROVIDERS.registered(entry), METHODS.registered(base), METHODS.registered(tuned):
        path = write_config(
            tmp_path,
            provider={"name": "newcomer", "model": "m"},
            evaluation={"compare": compare},
            debate={"rounds": 1},
            finetune={"poll_seconds": 0.01},
        )
        forecast = estimate(load_config(path))
        estimated = cli("estimate", path)
        result = cli("run", path)
        later = cli("evaluate", path, "--iteration", "1")
    assert result.exit_code == 0, result.output
    assert forecast.total.requests == len(provider.requests) > 0
    for name in ("greedy_base", "self_consistency"):  # whose eval debate each line is
        assert f" {name}: eval " in result.output
    lines = {line.name: line.requests for line in forecast.lines}
    # round 1 alone, as the baseline's first round, but greedy: none of its answers is reused
    assert lines["greedy_base: eval, tunes nothing"] == lines["baseline (eval, once)"] > 0
    if tuning:
        assert forecast.tuning_jobs > 0 and not forecast.skipped
    else:
        assert forecast.tuning_jobs == 0 and forecast.skipped == ["greedy_ft"]
        assert "tuning: none; provider newcomer cannot tune models here" in estimated.output
        assert "(it skips greedy_ft)" in estimated.output
        # no way on to `mafine finetune`, which is refused too
        assert later.exit_code != 0 and later.stderr.strip().endswith(
            "provider newcomer cannot tune models here; evaluate the base models with --iteration 0"
        )
    assert "estimate for newcomer: m (not billed per token)" in estimated.output


def _refused(status: int) -> Callable:
    """A reply that fails as an HTTP client does: no connection (status 0), or `status`."""
    try:  # google-genai 3.x depends on httpx2 (httpx's API), older ones on httpx
        import httpx2 as httpx
    except ImportError:  # pragma: no cover - depends on the installed google-genai
        import httpx
    sent = httpx.Request("POST", "http://127.0.0.1:9/v1/chat")

    def reply(request):
        if not status:
            raise httpx.ConnectError("All connection attempts failed", request=sent)
        answer = httpx.Response(status, json={"error": {"message": "bad key"}}, request=sent)
        raise httpx.HTTPStatusError(f"{status} Unauthorized", request=sent, response=answer)

    return reply


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (0, "provider scripted: the service could not be reached (ConnectError: All connection"),
        (401, "provider scripted: the service answered HTTP 401: bad key; check the API key"),
    ],
)
def test_a_plugin_providers_http_errors_are_one_line_naming_it(
    cli: Callable, tmp_path, status, expected
) -> None:
    """A newcomer's provider that lets its HTTP client's errors through (after `Retrier`
    gave up) gets one line naming it, not an internal error."""
    from tests.test_errors import assert_one_line_error

    provider = ScriptedProvider(reply=_refused(status))
    with PROVIDERS.registered(
        ProviderEntry("scripted", closing(lambda *a: provider), lambda c: Capabilities())
    ):
        path = write_config(tmp_path, provider={"name": "scripted", "model": "m"})
        line = assert_one_line_error(cli("run", path), expected)
    assert "internal error" not in line and "rerun to resume" in line
    failing = ProviderEntry(
        "scripted",
        closing(lambda *a: provider),
        lambda c: Capabilities(),
        check=lambda config: [_refused(status)(None)],
    )
    with PROVIDERS.registered(failing):
        checked = cli("check", path)
    assert checked.exit_code != 0 and f"FAIL provider: {expected}" in checked.output


class ToleranceOptions(Strict):
    tolerance: float = 0.0


def test_a_plugin_graders_options_are_recorded_without_code_of_its_own() -> None:
    """A grader that takes options and keeps `Grader.settings()` records them in the metrics,
    so two runs graded with other options never read as the same grading."""
    from mafine.grading import Grader
    from mafine.grading.registry import GRADERS, GraderEntry
    from mafine.grading.settings import GradingConfig

    class Tolerant(Grader):
        name = "tolerant"

        def equivalent_many(self, pairs):
            raise NotImplementedError  # only its settings are read here

    entry = GraderEntry("tolerant", Tolerant, "numbers within a tolerance", ToleranceOptions)
    with GRADERS.registered(entry):
        config = GradingConfig(grader="tolerant", options={"tolerant": {"tolerance": 0.5}})
        assert Tolerant(config).settings() == {"name": "tolerant", "tolerance": 0.5}
        assert Tolerant(GradingConfig(grader="tolerant")).settings()["tolerance"] == 0.0


def test_the_docs_table_of_builtins_is_generated_from_the_registries() -> None:
    text = ARCHITECTURE.read_text()
    expected = catalog.with_table(text, catalog.markdown(catalog.rows(builtin_only=True)))
    assert text == expected, (
        "docs/architecture.md's table of registered names drifted from the registries; "
        "regenerate it: .venv/bin/python -m mafine.catalog docs/architecture.md"
    )


def test_a_plugin_error_in_an_unknown_library_gets_its_registered_hint() -> None:
    from mafine.guard import describe
    from mafine.registry import ERROR_HINTS, ErrorHint

    error = type("TokenExpired", (Exception,), {"__module__": "acme_sdk.auth"})("expired")
    with ERROR_HINTS.registered(ErrorHint("acme_sdk.auth", "acme login: {error}; run acme")):
        assert describe(error) == "acme login: expired; run acme"


def test_a_stale_install_without_mafines_entry_points_says_how_to_fix_it(
    monkeypatch, capsys
) -> None:
    from importlib import metadata

    from mafine import registry

    monkeypatch.setattr(metadata, "entry_points", lambda group: [])
    assert registry.plugin_entry_points() == []
    (line,) = capsys.readouterr().err.splitlines()
    assert "its own entry points (mafine.plugins) are not installed" in line
    assert "reinstall mafine (pip install -e . in a checkout)" in line


def test_no_field_description_lists_registered_names() -> None:
    """Names live in the registries only: a description that lists them would drift."""
    from pydantic import BaseModel

    from mafine.config import Config
    from mafine.data.registry import HUB_DATASETS, SOURCES
    from mafine.grading.registry import GRADERS
    from mafine.methods import METHODS

    names = {
        name
        for registry in (PROVIDERS, SOURCES, HUB_DATASETS, GRADERS, METHODS)
        for name in registry.names()
        if len(name) > 4  # short names (file, hub, math) are ordinary words too
    }

    def descriptions(model: type[BaseModel], prefix: str = "") -> list[tuple[str, str]]:
        found = []
        for key, field in model.model_fields.items():
            found.append((prefix + key, field.description or ""))
            annotation = field.annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                found += descriptions(annotation, f"{prefix}{key}.")
        return found

    def listed(key: str, text: str) -> list[str]:
        """The registered names a description mentions, less the field's own Literal choices
        (`sft.selection: single_agent` is a value of that field, not a registry listing)."""
        model: Any = Config
        for part in key.split("."):
            field = model.model_fields[part]
            model = field.annotation
        own = set(get_args(field.annotation)) if get_origin(field.annotation) is Literal else set()
        return sorted(name for name in names - own if name in text)

    listing = [
        (key, found) for key, text in descriptions(Config) if len(found := listed(key, text)) >= 2
    ]
    assert not listing, listing


@pytest.mark.parametrize(
    ("reference", "fragment"),
    [
        ("my_plugin_not_there.provider:open", "cannot be imported: No module named"),
        ("mafine.providers:open_mine", "mafine.providers has no 'open_mine'"),
    ],
)
def test_a_mistyped_import_path_in_an_entry_is_one_line(cli, tmp_path, reference, fragment):
    from tests.test_errors import assert_one_line_error

    entry = ProviderEntry("typo", open=reference, capabilities=lambda config: Capabilities())
    with PROVIDERS.registered(entry):
        result = cli("debate", write_config(tmp_path, provider={"name": "typo"}), "-i", "1")
    assert_one_line_error(result, f"{reference} (named by a registry entry)")
    assert fragment in result.output
