"""What counts as a secret (mafine.secrets): the checks behind the config's refusals and the
scrubbing of every error line."""

from __future__ import annotations

import pytest

from mafine.secrets import (
    REDACTED,
    holds_secret,
    looks_like_a_key,
    scrub,
    url_secret_parameters,
)

KEY = "AIzaSyScrubTestKey0123456789abcdefghij"


@pytest.mark.parametrize("name", ["GEMINI_API_KEY", "MY_KEY_2", "_PRIVATE"])
def test_a_variable_name_is_not_a_key(name):
    assert not looks_like_a_key(name)


@pytest.mark.parametrize(
    "value", [KEY, "sk-abc123", "my key", "GEMINI_API_KEY=abc", "AIza" + "x" * 30]
)
def test_a_key_is_not_a_variable_name(value):
    assert looks_like_a_key(value)


def test_key_like_url_parameters():
    assert url_secret_parameters(f"https://x.example/v1?alt=sse&key={KEY}") == ["key"]
    assert url_secret_parameters("https://x.example/v1?access_token=t&api-key=k") == [
        "access_token",
        "api-key",
    ]
    assert url_secret_parameters("http://127.0.0.1:8765/v1beta?alt=sse") == []


def test_scrub_replaces_env_secrets_key_shapes_and_query_values(monkeypatch):
    monkeypatch.setenv("SERVICE_TOKEN", "tok-0123456789")
    text = scrub(f"failed {KEY} at https://h/?token=abc&x=1 with tok-0123456789")
    assert KEY not in text and "abc" not in text and "tok-0123456789" not in text
    assert text.count(REDACTED) == 3 and "x=1" in text


@pytest.mark.parametrize(
    "url",
    [
        "https://user:hunter2secret@gemini.example/v1",
        "http://me:p%40ss@127.0.0.1:8765",
        "postgres://admin:pw@db:5432/x",
    ],
)
def test_a_password_in_a_url_is_a_secret_and_is_scrubbed(url):
    assert holds_secret(url)
    text = scrub(f"cannot reach {url}: refused")
    password = url.split("://", 1)[1].split("@", 1)[0].split(":", 1)[1]
    assert password not in text and REDACTED in text
    assert text.startswith(f"cannot reach {url.split(':', 2)[0]}:")


@pytest.mark.parametrize(
    "url", ["https://user@host/v1", "http://127.0.0.1:8765/v1beta", "https://h/a:b@c"]
)
def test_a_url_without_a_password_is_no_secret(url):
    assert not holds_secret(url)
    assert scrub(url) == url


@pytest.mark.parametrize(
    "setting",
    [
        "provider.gemini.base_url=https://user:hunter2secret@gemini.example",
        "provider.model=https://user:hunter2secret@gemini.example/m",
        "prompts.question=see https://x.example/data?token=hunter2secret {question}",
    ],
)
def test_a_credential_in_any_config_url_is_refused_before_anything_is_written(tmp_path, setting):
    from typer.testing import CliRunner

    from mafine.cli import app
    from tests.conftest import write_config

    config = write_config(tmp_path)
    result = CliRunner().invoke(app, ["prepare", str(config), "--set", setting])
    assert result.exit_code != 0
    assert "hunter2secret" not in result.output
    assert setting.split("=", 1)[0] in result.output
    assert not (tmp_path / "runs").exists()
