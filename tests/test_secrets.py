"""What counts as a secret (mafine.secrets): the checks behind the config's refusals and the
scrubbing of every error line."""

from __future__ import annotations

import pytest

from mafine.secrets import REDACTED, looks_like_a_key, scrub, url_secret_parameters

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
