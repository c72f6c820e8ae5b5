"""`mafine check`: a passing setup, and one failing case per check, all on the fake."""

from __future__ import annotations

import pytest

from mafine.check import check
from mafine.config import FakeSettings, load_config
from mafine.providers.fake_gemini import FakeGemini, Reply
from tests.conftest import write_config

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

CHECKS = ("credentials", "model", "thinking", "bucket", "tuning", "rate")


def lines(result) -> dict[str, str]:
    """check name -> its line, from the command's output."""
    assert "Traceback" not in result.output
    found = {}
    for line in result.output.splitlines():
        status, _, rest = line.partition(" ")
        name = rest.strip().split(":", 1)[0]
        if status in ("ok", "FAIL") and name in CHECKS:
            found[name] = line
    return found


def failed(result, name: str) -> str:
    assert result.exit_code == 1, result.output
    line = lines(result)[name]
    assert line.startswith("FAIL"), result.output
    return line


def test_a_passing_setup_checks_everything_and_prints_the_estimate(cli, tmp_path):
    config = write_config(tmp_path, provider__gemini={"requests_per_minute": 120})
    result = cli("check", config)
    assert result.exit_code == 0, result.output
    found = lines(result)
    assert set(found) == set(CHECKS), result.output
    assert all(line.startswith("ok") for line in found.values()), result.output
    assert "12 requests at once passed" in found["rate"]
    assert "thinkingLevel=MINIMAL accepted" in found["thinking"]
    assert "estimate for gemini-3.1-flash-lite" in result.output
    assert "standard" in result.output and "batch" in result.output


def test_bad_credentials(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("CHECK_KEY", "AIzaSy-the-wrong-key")
    with FakeGemini(FakeSettings(api_key="the-right-key")) as fake:
        gemini = {"base_url": fake.url, "api_key_env": "CHECK_KEY", "tier": "none"}
        config = write_config(tmp_path, provider__name="gemini", provider__gemini=gemini)
        line = failed(cli("check", config), "credentials")
    assert "API_KEY_INVALID" in line and "CHECK_KEY" in line
    assert "AIzaSy-the-wrong-key" not in line


def test_a_missing_key_is_a_credentials_failure(cli, tmp_path, monkeypatch):
    monkeypatch.delenv("CHECK_KEY", raising=False)
    gemini = {"api_key_env": "CHECK_KEY"}
    config = write_config(tmp_path, provider__name="gemini", provider__gemini=gemini)
    assert "set the environment variable CHECK_KEY" in failed(cli("check", config), "credentials")


def test_an_unknown_model(cli, tmp_path):
    config = write_config(tmp_path, provider__model="gemini-3.5-flash-retired")
    assert "the model is the problem" in failed(cli("check", config), "model")


def test_a_model_outside_its_region(cli, tmp_path):
    config = write_config(
        tmp_path,
        provider__fake__regional_serving=True,
        provider__gemini={"location": "europe-west4"},
    )
    line = failed(cli("check", config), "model")
    assert "region is the problem" in line and "location=global" in line


def test_a_thinking_setting_the_model_refuses(cli, tmp_path):
    config = write_config(
        tmp_path,
        provider__model="gemini-2.5-pro",
        provider__fake__models=["gemini-2.5-pro"],
        provider__gemini={"thinking_budget": 0},
    )
    line = failed(cli("check", config), "thinking")
    assert "Budget 0 is invalid" in line and "thinking_budget" in line


def test_a_bucket_that_cannot_be_written(tmp_path):
    class ReadOnlyStorage(FakeGemini):
        def intercept(self, kind, request):
            if kind == "upload":
                return Reply.error(403, "does not have storage.objects.create access")
            return super().intercept(kind, request)

    report = check(load_config(write_config(tmp_path)), fake_factory=ReadOnlyStorage)
    bucket = next(o for o in report.outcomes if o.name == "bucket")
    assert not bucket.ok and "roles/storage.objectAdmin" in bucket.line()
    assert not report.ok


def test_tunability_comes_from_googles_list_not_the_serving_region(cli, tmp_path):
    # 3.1 Flash-Lite is served from global only, yet Vertex AI tunes it in us-central1.
    config = write_config(tmp_path, provider__fake__regional_serving=True)
    result = cli("check", config)
    line = lines(result)["tuning"]
    assert line.startswith("ok") and "Google lists gemini-3.1-flash-lite as tunable" in line
    assert "2.5" not in result.output  # never recommends a retired model


def test_tuning_on_global(cli, tmp_path):
    config = write_config(tmp_path, provider__gemini={"tuning_location": "global"})
    assert "does not tune in global" in failed(cli("check", config), "tuning")


def test_a_quota_below_the_configured_rate(cli, tmp_path):
    config = write_config(
        tmp_path,
        provider__fake__requests_per_minute=5,
        provider__gemini={"requests_per_minute": 600},
    )
    line = failed(cli("check", config), "rate")
    assert "answered 429" in line and "provider.gemini.tier" in line
