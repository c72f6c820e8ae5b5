"""Each kind of extension is one registry entry: a throwaway provider, data source and
compared method registered from this file alone run through the CLI; unknown names of each
kind are refused at config validation in one line, before anything is spent."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import pytest

from mafine.config import load_config
from mafine.data.registry import HUB_DATASETS, SOURCES, HubDataset, SourceKind
from mafine.data.settings import SourceSettings
from mafine.grading.registry import GRADERS
from mafine.jsonl import read_rows
from mafine.methods import METHODS, Method
from mafine.providers import closing
from mafine.providers.base import Capabilities
from mafine.providers.registry import PROVIDERS, ProviderEntry
from mafine.rundir import RunDir
from mafine.schema import Strict
from mafine.stages import prepare
from mafine.stages.debate import debate_split
from mafine.stages.session import open_session
from tests.conftest import write_config
from tests.scripted import ScriptedProvider, boxed
from tests.test_errors import assert_one_line_error


class ScriptedSettings(Strict):
    answer: str = "7"


@pytest.fixture
def scripted() -> Iterator[list[ScriptedProvider]]:
    """A `scripted` provider (with its own `provider.scripted` section) registered for the
    test; the list holds every instance the CLI opened."""
    opened: list[ScriptedProvider] = []

    def make(config, seed, state_dir) -> ScriptedProvider:
        provider = ScriptedProvider(reply=boxed(config.settings_of("scripted").answer))
        opened.append(provider)
        return provider

    entry = ProviderEntry(
        "scripted",
        open=closing(make),
        capabilities=lambda config: Capabilities(tuning=True),
        settings=ScriptedSettings,
    )
    with PROVIDERS.registered(entry):
        yield opened


def test_a_registered_provider_runs_the_whole_pipeline(cli, tmp_path, scripted) -> None:
    path = write_config(tmp_path, provider={"name": "scripted", "scripted": {"answer": "5"}})
    result = cli("run", path)
    assert result.exit_code == 0, result.output
    (provider,) = scripted
    assert provider.closed and provider.requests and provider.tuned
    run = tmp_path / "runs" / "exp"
    models = [json.loads(line) for line in (run / "iter-1" / "models.jsonl").open()]
    generators = [m for m in models if m["role"] == "generator"]
    assert all(m["serving_model"].endswith("-tuned") for m in generators)
    transcript = json.loads((run / "iter-1" / "eval-debate.jsonl").open().readline())
    assert transcript["agents"][0]["turns"][0]["answer"] == "5"


@pytest.fixture
def untunable() -> Iterator[list[ScriptedProvider]]:
    """A provider that cannot tune, registered for the test; the list holds what it opened."""
    opened: list[ScriptedProvider] = []

    def make(config, seed, state_dir) -> ScriptedProvider:
        opened.append(ScriptedProvider(capabilities=Capabilities()))
        return opened[-1]

    entry = ProviderEntry(
        "untunable",
        open=closing(make),
        capabilities=lambda c: Capabilities(),
        tuning_hint="use a provider that tunes",
    )
    with PROVIDERS.registered(entry):
        yield opened


def test_a_provider_that_cannot_tune_runs_its_baselines_and_says_what_it_skipped(
    cli, tmp_path, untunable
) -> None:
    path = write_config(
        tmp_path,
        provider={"name": "untunable"},
        evaluation={"embedder": "none", "compare": ["star", "self_consistency"]},
    )
    result = cli("run", path)
    assert result.exit_code == 0, result.output
    assert (
        "provider untunable cannot tune models here, so this run skips 1 iteration(s) of "
        "fine-tuning and the compared methods star and runs the baselines and the methods that "
        "tune nothing; use a provider that tunes"
    ) in " ".join(result.output.split())
    (provider,) = untunable
    config = load_config(path)
    eval_size, k = config.data.eval_size, config.evaluation.self_consistency_k
    # the base models' eval debates, and the samples self-consistency adds to Majority's
    assert len(provider.requests) == eval_size * (9 + k - config.agents.count)
    run = tmp_path / "runs" / "exp"
    metrics = json.loads((run / "metrics.json").read_text())
    assert {m["key"] for m in metrics["methods"]} >= {"base", "majority", "debate"}
    assert "self_consistency" in {m["key"] for m in metrics["methods"]}
    assert {m["iteration"] for m in metrics["methods"]} == {0}
    assert not (run / "iter-1").exists() and not (run / "variants" / "star").exists()


def test_a_provider_that_cannot_tune_refuses_the_tuning_command_in_one_line(
    cli, tmp_path, untunable
) -> None:
    result = cli("finetune", write_config(tmp_path, provider={"name": "untunable"}))
    assert_one_line_error(result, "provider untunable cannot tune models here; use a provider")
    assert all(not provider.requests for provider in untunable)


def test_a_provider_that_cannot_tune_and_no_baselines_is_refused_before_anything_is_spent(
    cli, tmp_path, untunable
) -> None:
    path = write_config(
        tmp_path,
        provider={"name": "untunable"},
        evaluation={"embedder": "none", "baselines": False},
    )
    assert_one_line_error(cli("run", path), "provider untunable cannot tune models")
    assert all(not provider.requests for provider in untunable)
    assert not (tmp_path / "runs" / "exp" / "problems").exists()


class CountdownSource(SourceSettings):
    kind: Literal["countdown"] = "countdown"
    start: int = 100


def countdown(source: CountdownSource, seed: int) -> Iterator[tuple[str, str, str]]:
    for n in range(source.start, 0, -1):
        yield f"countdown/{n}", f"What is {n} minus 1?", str(n - 1)


def test_a_registered_data_source_feeds_prepare(cli, tmp_path) -> None:
    entry = SourceKind(
        "countdown", CountdownSource, records=countdown, describe=lambda s: "countdown"
    )
    with SOURCES.registered(entry):
        path = write_config(tmp_path, data__source={"kind": "countdown", "start": 40})
        result = cli("prepare", path)
        assert result.exit_code == 0, result.output
        stored = load_config(path).data.source
    assert isinstance(stored, CountdownSource) and stored.start == 40
    problems = (tmp_path / "runs" / "exp" / "problems" / "eval.jsonl").read_text()
    first = json.loads(problems.splitlines()[0])
    assert first["source"] == "countdown" and first["question"] == "What is 40 minus 1?"


def test_a_registered_method_is_compared_and_labelled(cli, tmp_path, scripted) -> None:
    method = Method("greedy", "Multiagent FT, greedy decoding", {"sampling": {"temperature": 0}})
    with METHODS.registered(method):
        path = write_config(
            tmp_path, provider={"name": "scripted"}, evaluation={"compare": ["greedy"]}
        )
        result = cli("run", path)
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "runs" / "exp" / "metrics.json").read_text())
    labels = {m["key"]: m["label"] for m in metrics["methods"]}
    assert labels["greedy"] == "Multiagent FT, greedy decoding"
    variant = tmp_path / "runs" / "exp" / "variants" / "greedy" / "config.yaml"
    assert "temperature: 0" in variant.read_text()


@pytest.mark.parametrize(
    ("override", "fragment"),
    [
        ("provider.name=openai", "provider.name: unknown provider 'openai'; use one of: fake"),
        ("data.source={kind: web}", "data.source: unknown data source kind 'web'"),
        ("data.source={kind: hub, dataset: aime}", "unknown hub data set 'aime'"),
        ("evaluation.compare=[dpo]", "unknown compared method 'dpo'; use one of: single_agent"),
        ("evaluation.compare=[base]", "unknown compared method 'base'"),
        ("provider.openai={url: x}", "unknown key provider.openai"),
    ],
)
def test_unknown_names_are_refused_in_one_line(cli, config_path, override, fragment) -> None:
    assert_one_line_error(cli("prepare", config_path, "--set", override), fragment)
    assert not (config_path.parent / "runs").exists()


def test_stages_run_on_a_scripted_provider_given_to_the_session(tmp_path: Path) -> None:
    """The session seam: a stage unit test with no server and no CLI."""
    config = load_config(write_config(tmp_path))
    provider = ScriptedProvider(reply=boxed("3"))

    async def debate(run: RunDir) -> None:
        async with open_session(run, provider=provider) as session:
            await debate_split(session, 0, "eval")

    with RunDir.open(config) as run:
        prepare.prepare(run)
        asyncio.run(debate(run))
        from mafine.artifacts import Transcript

        transcripts = list(read_rows(run.transcripts(0, "eval"), Transcript))
    assert len(transcripts) == config.data.eval_size
    assert {t.agents[0].final_answer for t in transcripts} == {"3"}
    assert not provider.closed  # the caller owns a provider it gives
    # per problem: 3 first answers, then in round 2 a summary and a critique for each agent
    assert len(provider.requests) == config.data.eval_size * 9


DOCS = Path(__file__).resolve().parent.parent / "docs"
README = DOCS.parent / "README.md"
NAME_CELL = re.compile(r"^\| `([a-z0-9_]+)`")
CELL_NAME = re.compile(r"\| `([a-z0-9_]+)`:")


def table_names(
    path: Path, header: str, pattern: re.Pattern[str] = NAME_CELL, section: str = ""
) -> set[str]:
    """The names in the first table whose header line starts with `header` (after the heading
    `section`, when given): the backticked name that opens each row (or, with CELL_NAME, opens
    a cell as `name`:)."""
    lines = path.read_text().splitlines()
    after = lines.index(section) if section else 0
    start = next(i for i, line in enumerate(lines) if i > after and line.startswith(header))
    names = set()
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        found = pattern.findall(line)
        names.update(found if pattern is CELL_NAME else found[:1])
    return names


@pytest.mark.parametrize(
    ("path", "header", "registry", "pattern"),
    [
        (README, "| `provider.name` | generation", PROVIDERS, NAME_CELL),
        (DOCS / "architecture.md", "| `provider.name` | what", PROVIDERS, NAME_CELL),
        (DOCS / "datasets.md", "| `kind` | what", SOURCES, NAME_CELL),
        (DOCS / "datasets.md", "| `dataset` | hub repository", HUB_DATASETS, NAME_CELL),
        (DOCS / "grading.md", "| grader | compares", GRADERS, NAME_CELL),
        (DOCS / "method.md", "| paper | mafine", METHODS, CELL_NAME),  # the ablations section
    ],
)
def test_the_docs_tables_name_exactly_the_builtin_entries(path, header, registry, pattern) -> None:
    """Hand-written tables (saying more than the registry knows) checked against the
    registries: a name added, removed or misspelt on either side fails here."""
    section = "## Baselines and ablations (`evaluation.compare`)" if registry is METHODS else ""
    documented = table_names(path, header, pattern, section)
    builtin = {
        entry.name
        for entry in registry.entries()
        if registry.origin(entry.name).partition(":")[0] == "mafine"
        and getattr(entry, "comparable", True)  # METHODS: only the ones a config can compare
    }
    assert documented == builtin, (
        f"{path.name}'s table under {header!r} names {sorted(documented)}, the registries "
        f"{sorted(builtin)}: edit the table (`mafine plugins` lists the registered names)"
    )


def test_a_registered_hub_data_set_reads_its_local_copy(cli, tmp_path) -> None:
    """A hub data set with a split of its own, read from a local copy (no network)."""
    copy = tmp_path / "tiny.jsonl"
    copy.write_text(
        "".join(json.dumps({"q": f"{n} + 1?", "a": str(n + 1)}) + "\n" for n in range(30))
    )

    def parse(source, name, parts):
        rows = [row for part in parts for row in part.table]
        return len(rows), lambda i: (f"tiny/{i}", rows[i]["q"], rows[i]["a"])

    entry = HubDataset("tiny", "example/tiny", ("validation",), parse, lambda source: [None])
    with HUB_DATASETS.registered(entry):
        source = {"kind": "hub", "dataset": "tiny", "split": "validation", "path": str(copy)}
        result = cli("prepare", write_config(tmp_path, data__source=source))
    assert result.exit_code == 0, result.output
    first = json.loads((tmp_path / "runs" / "exp" / "problems" / "eval.jsonl").open().readline())
    assert first["id"].startswith("tiny/") and first["source"].startswith("tiny (")


def test_each_builtin_providers_section_is_the_settings_its_entry_names() -> None:
    """`provider.<name>` holds the settings model the provider's entry declares, builtin or not."""
    from mafine.providers.settings import ProviderConfig

    for entry in PROVIDERS.entries():
        if entry.name in ProviderConfig.model_fields:
            assert ProviderConfig.model_fields[entry.name].annotation is entry.settings, entry.name
            assert isinstance(ProviderConfig().settings_of(entry.name), entry.settings)
