"""Gemini as Google documents it in December 2026 (issue 18), against the fake in its default
mode, which imitates each fact (`providers.gemini.models.TABLE` names the sources): mafine
completes, retries, or stops in one line with Google's own words and never the key."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import yaml

from mafine.config import FakeSettings, GeminiSettings
from mafine.errors import MafineError
from mafine.providers import fake_connection
from mafine.providers.fake_gemini import FakeGemini
from mafine.providers.gemini import Connection, GeminiProvider, generation, models
from tests.conftest import write_config
from tests.test_gemini_real_shapes import FAST, generate, request, vertex

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
SHIPPED_GEMINI = sorted(
    path
    for path in CONFIGS.glob("*.yaml")
    if (yaml.safe_load(path.read_text()).get("provider") or {}).get("name") == "gemini"
)
KEY = "AIzaSy-facts-test-key"


def api_key(fake: FakeGemini, monkeypatch: pytest.MonkeyPatch) -> Connection:
    monkeypatch.setenv("FACTS_KEY", KEY)
    return Connection(vertex=False, api_key=KEY, base_url=fake.url)


# ---- item 1: regions -------------------------------------------------------------------


def test_the_shipped_gemini_configs_are_the_three_the_issue_names():
    assert {path.name for path in SHIPPED_GEMINI} == {
        "mvp.yaml",
        "paper.yaml",
        "math-to-gsm8k.yaml",
    }


@pytest.mark.parametrize("path", SHIPPED_GEMINI, ids=lambda p: p.name)
def test_every_shipped_gemini_config_agrees_with_the_table(path):
    provider = yaml.safe_load(path.read_text())["provider"]
    settings = GeminiSettings(**provider["gemini"])
    facts = models.facts_of(provider["model"])
    assert facts is not None, f"{path.name}: {provider['model']} is not in models.TABLE"
    assert facts.served_in(settings.location), (path.name, settings.location)
    assert settings.tuning_location not in models.MULTI_REGIONS
    assert facts.tunable and not facts.retired_on_vertex()
    adapter = yaml.safe_load(path.read_text()).get("finetune", {}).get("adapter_size", 4)
    assert adapter in facts.adapter_sizes


@pytest.mark.parametrize("path", SHIPPED_GEMINI, ids=lambda p: p.name)
def test_every_shipped_gemini_config_runs_on_the_default_regional_fake(cli, tmp_path, path):
    deepmind = "{kind: deepmind, module: arithmetic__add_or_sub, difficulty: interpolate}"
    result = cli(
        "run",
        path,
        "--set", "provider.name=fake",
        "--set", f"run_dir={tmp_path / 'run'}",
        "--set", f"data.source={deepmind}",
        "--set", "data.eval_source=null",
        "--set", "data.train_size=3",
        "--set", "data.eval_size=2",
        "--set", "iterations=1",
        "--set", "evaluation.embedder=none",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    assert list((tmp_path / "run").rglob("*.jsonl")), "no stage wrote anything"


def test_the_old_regional_location_stops_in_one_line_with_googles_words(cli, tmp_path):
    config = write_config(tmp_path, provider__gemini={"location": "us-central1"})
    result = cli("run", config)
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    line = result.output.strip().splitlines()[-1]
    assert "not served in us-central1" in result.output
    assert "provider.gemini.location=global" in result.output
    assert "was not found or your project does not have access to it" in result.output, line


def test_the_fake_serves_per_the_table_by_default():
    assert FakeSettings().regional_serving
    with FakeGemini(FakeSettings()) as fake:
        (served,), _ = generate(vertex(fake, "eu"), request())
        with pytest.raises(MafineError) as regional:
            generate(vertex(fake, "europe-west4"), request())
    assert served.finish_reason == "STOP"
    assert "region is the problem" in str(regional.value)


# ---- item 2: thinking levels ------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "lowest"),
    [
        ("gemini-3.1-flash-lite", "MINIMAL"),
        ("gemini-3.5-flash-lite", "MINIMAL"),
        ("gemini-3.5-flash", "LOW"),
        ("gemini-3.7-flash", "LOW"),
        ("gemini-3.8-flash", "LOW"),
        ("gemini-3.9-flash-unknown", "LOW"),  # a model the table does not know: the safest
    ],
)
def test_lowest_is_the_lowest_level_each_model_accepts(model, lowest):
    assert generation.thinking(model, GeminiSettings()) == {"thinkingLevel": lowest}


def test_a_flash_model_that_refuses_minimal_completes_at_its_lowest_level():
    with FakeGemini(FakeSettings()) as fake:
        (answer,), _ = generate(vertex(fake), request("gemini-3.7-flash"), model="gemini-3.7-flash")
    assert answer.finish_reason == "STOP" and answer.text


def test_an_explicit_refused_level_stops_in_one_line_with_googles_words():
    with FakeGemini(FakeSettings()) as fake, pytest.raises(MafineError) as refused:
        generate(
            vertex(fake),
            request("gemini-3.7-flash"),
            model="gemini-3.7-flash",
            thinking_level="minimal",
        )
    line = str(refused.value)
    assert "\n" not in line and "400" in line
    assert "Thinking level MINIMAL is not supported for this model" in line


# ---- item 6: retired models, modelVersion -----------------------------------------------


def test_a_retired_model_on_the_gemini_api_keeps_googles_words_and_never_the_key(monkeypatch):
    with FakeGemini(FakeSettings()) as fake, pytest.raises(MafineError) as gone:
        generate(api_key(fake, monkeypatch), request("gemini-2.5-flash"),
                 model="gemini-2.5-flash")  # fmt: skip
    line = str(gone.value)
    assert "no longer available to new users" in line and "newer model" in line
    assert KEY not in line and "\n" not in line


def test_a_retired_model_on_vertex_is_named_retired():
    with FakeGemini(FakeSettings()) as fake, pytest.raises(MafineError) as gone:
        generate(vertex(fake), request("gemini-2.5-flash"), model="gemini-2.5-flash")
    assert "retired on Vertex AI on 2026-10-16" in str(gone.value)
    assert "Publisher Model" in str(gone.value)


def test_the_answering_model_is_recorded_and_a_substitute_warned_about_once(monkeypatch, capsys):
    with FakeGemini(FakeSettings()) as fake:
        answers, _ = generate(
            api_key(fake, monkeypatch),
            request("gemini-3.5-flash"),
            request("gemini-3.5-flash"),
            model="gemini-3.5-flash",
        )
    assert {a.model_version for a in answers} == {"gemini-3.6-flash"}
    out = capsys.readouterr().out
    assert out.count("answered by gemini-3.6-flash") == 1


def test_the_same_model_answering_is_not_warned_about(capsys):
    with FakeGemini(FakeSettings()) as fake:
        (answer,), _ = generate(vertex(fake), request())
    assert answer.model_version == "gemini-3.1-flash-lite"
    assert "answered by" not in capsys.readouterr().out


# ---- Misleads: sampling, tuning, check --------------------------------------------------


def test_a_model_that_ignores_temperature_is_warned_about(capsys):
    with FakeGemini(FakeSettings()) as fake:
        connection = vertex(fake)
        config = _provider_config("gemini-3.5-flash-lite")
        asyncio.run(GeminiProvider(config, connection, pace_by_tier=False).aclose())
    assert "ignores sampling.temperature and sampling.top_p" in capsys.readouterr().out


def _provider_config(model: str):
    from mafine.config import ProviderConfig

    return ProviderConfig(name="gemini", model=model, timeout_s=10.0, gemini=GeminiSettings(**FAST))


def test_dropped_examples_and_a_queued_job_are_shown(cli, tmp_path):
    config = write_config(
        tmp_path,
        provider__fake__max_example_tokens=60,
        provider__fake__tuning_queued_polls=1,
        finetune__poll_seconds=0.01,
    )
    result = cli("run", config)  # the critics' long examples are all dropped: their jobs fail
    assert "Traceback" not in result.output
    assert "is queued (waiting for tuning quota or capacity)" in result.output
    assert "Vertex AI dropped" in result.output and "more than 131072 tokens" in result.output


def test_check_never_recommends_a_retired_model(cli, tmp_path):
    config = write_config(tmp_path, provider__model="gemini-3.7-flash")
    result = cli("check", config)
    tuning = next(line for line in result.output.splitlines() if "tuning:" in line)
    assert tuning.startswith("FAIL") and "does not list gemini-3.7-flash" in tuning
    assert "gemini-3.1-flash-lite" in tuning and "2.5" not in tuning


def test_fake_connection_defaults_to_a_location_that_serves_gemini_3():
    assert fake_connection("http://127.0.0.1:1").location == "global"


def test_check_probes_the_thinking_setting_on_the_runs_tuned_models_too(cli, tmp_path):
    config = write_config(tmp_path, finetune__poll_seconds=0.01)
    assert cli("run", config).exit_code == 0
    result = cli("check", config)
    tuned = next(line for line in result.output.splitlines() if "thinking (tuned):" in line)
    assert tuned.startswith("ok") and "/endpoints/" in tuned
    assert "thinkingLevel=MINIMAL accepted" in tuned
