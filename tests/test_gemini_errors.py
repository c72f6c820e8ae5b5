"""Gemini errors by class: one clear line for 4xx, a stop for quotas, never the API key."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from mafine.config import FakeSettings
from mafine.providers.fake_gemini import FakeGemini, Reply
from mafine.providers.limits import classify
from tests.conftest import write_config

SECRET = "AIzaSy-test-secret-0123456789abcdef"


class ScriptedFake(FakeGemini):
    """A fake whose generation answers are replaced by `reply` (when set), counting bodies."""

    def __init__(self, settings: FakeSettings | None = None) -> None:
        super().__init__(settings or FakeSettings())
        self.reply: Reply | None = None
        self.bodies: dict[bytes, int] = {}
        self._count_lock = threading.Lock()

    def intercept(self, kind, request):
        if kind == "generate" and request.body:  # (a cancelled send arrives without a body)
            with self._count_lock:
                self.bodies[request.body] = self.bodies.get(request.body, 0) + 1
            if self.reply is not None:
                return self.reply
        return super().intercept(kind, request)


def gemini_config(tmp_path: Path, fake: FakeGemini, name: str = "exp", **changes) -> Path:
    gemini = {"base_url": fake.url, "tier": "none", "retry_initial_s": 0.01}
    gemini.update(changes.pop("gemini", {}))
    return write_config(tmp_path, name, provider__name="gemini", provider__gemini=gemini, **changes)


def one_line(result) -> str:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith("error:")
    return lines[0]


def assert_no_secret(root: Path, *texts: str) -> None:
    for text in texts:
        assert SECRET not in text
    for path in root.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path


@pytest.mark.parametrize(
    ("status", "message", "fragments"),
    [
        (400, "Invalid value at 'generation_config.top_p'", ["400", "top_p", "rejected"]),
        (401, "API key not valid. Please pass a valid API key.", ["401", "GEMINI_API_KEY"]),
        (403, "Permission denied: billing is disabled.", ["403", "billing", "GEMINI_API_KEY"]),
    ],
)
def test_client_errors_fail_at_once_with_one_line(
    cli, tmp_path, monkeypatch, status, message, fragments
):
    monkeypatch.setenv("GEMINI_API_KEY", SECRET)
    with ScriptedFake() as fake:
        config = gemini_config(tmp_path, fake)
        assert cli("prepare", config).exit_code == 0
        fake.reply = Reply.error(status, f"{message} key={SECRET}")
        result = cli("debate", config)
        line = one_line(result)
        for fragment in fragments:
            assert fragment in line, line
        assert max(fake.bodies.values()) == 1, "a client error was retried"
    assert_no_secret(config.parent / "runs" / config.stem, result.output, result.stderr)


def test_unknown_model_names_the_model_and_the_key_to_change(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("GEMINI_API_KEY", SECRET)
    with ScriptedFake() as fake:
        config = gemini_config(tmp_path, fake, provider__model="gemini-2.0-flash-exp")
        assert cli("prepare", config).exit_code == 0
        result = cli("debate", config)
        line = one_line(result)
        assert "gemini-2.0-flash-exp is not available" in line and "provider.model" in line
        assert max(fake.bodies.values()) == 1
    assert_no_secret(config.parent / "runs" / config.stem, result.output)


def test_the_key_is_nowhere_after_a_whole_run(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("GEMINI_API_KEY", SECRET)
    with FakeGemini(FakeSettings()) as fake:
        config = gemini_config(tmp_path, fake)
        outputs = [cli(stage, config) for stage in ("prepare", "debate", "build-sft")]
        outputs.append(cli("finetune", config))  # refused: tuning needs Vertex AI
    assert [r.exit_code for r in outputs] == [0, 0, 0, 1], outputs[-1].output
    assert_no_secret(config.parent / "runs" / config.stem, *(r.output for r in outputs))


def test_five_hundreds_are_retried_then_reported_without_the_key(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("GEMINI_API_KEY", SECRET)
    settings = FakeSettings(fault_rate=1.0, fault_kinds=["unavailable"])
    with FakeGemini(settings) as fake:
        config = gemini_config(tmp_path, fake, gemini={"max_attempts": 3, "retry_max_s": 0.05})
        assert cli("prepare", config).exit_code == 0
        line = one_line(cli("debate", config))
        assert "503" in line and "after 3 attempts" in line and "run the same command" in line
        assert fake.fault_stats()["unavailable"] >= 3


def quota_error(details: list, message: str = "Resource has been exhausted."):
    from google.genai import errors

    body = {"error": {"code": 429, "message": message, "status": "RESOURCE_EXHAUSTED"}}
    body["error"]["details"] = details
    return errors.ClientError(429, body)


def test_classify_separates_per_minute_from_per_day_quotas():
    retry = {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "17s"}

    def violation(quota_id, value="600"):
        return {
            "@type": "type.googleapis.com/google.rpc.QuotaFailure",
            "violations": [{"quotaId": quota_id, "quotaValue": value}],
        }

    minute = classify(quota_error([violation("GenerateRequestsPerMinutePerProject"), retry]))
    assert (minute.kind, minute.delay) == ("rate_limit", 17.0)
    day = classify(quota_error([violation("GenerateRequestsPerDayPerProjectPerModel"), retry]))
    assert day.kind == "quota" and "PerDay" in day.quota
    zero = classify(quota_error([violation("GenerateRequestsPerMinutePerProject", "0")]))
    assert zero.kind == "quota"
    text = classify(quota_error([], "Quota exceeded for metric: x, limit: 0, model: y"))
    assert text.kind == "quota"
    hinted = classify(quota_error([], "Too many requests. Please retry in 2.5s."))
    assert (hinted.kind, hinted.delay) == ("rate_limit", 2.5)
    plain = classify(quota_error([], "Resource exhausted, limit: 250"))
    assert plain.kind == "rate_limit"


def test_classify_transient_and_fatal():
    from google.genai import errors

    for code in (500, 502, 503, 504, 408):
        assert classify(errors.APIError(code, {"error": {"code": code}})).kind == "transient"
    for code in (400, 401, 403, 404):
        assert classify(errors.APIError(code, {"error": {"code": code}})).kind == "fatal"
    assert classify(json.JSONDecodeError("x", "", 0)).kind == "transient"
    assert classify(ValueError("bug")).kind == "fatal"


def test_classify_knows_both_transports_and_any_http_client():
    import aiohttp

    try:  # google-genai 3.x depends on httpx2 (a fork of httpx, the same API)
        import httpx2 as httpx
    except ImportError:  # pragma: no cover - depends on the installed google-genai
        import httpx
    import yarl

    key = aiohttp.client_reqrep.ConnectionKey("h", 1, False, True, None, None, None)
    transient = [
        aiohttp.ServerDisconnectedError(),
        aiohttp.ClientConnectorError(key, OSError(111, "refused")),
        aiohttp.ClientOSError(104, "reset"),
        aiohttp.ClientPayloadError("Response payload is not completed"),
        aiohttp.ServerTimeoutError("timeout"),
        TimeoutError(),
        httpx.ReadTimeout("timeout"),
        httpx.RemoteProtocolError("Server disconnected without sending a response."),
    ]
    for exc in transient:
        assert classify(exc).kind == "transient", exc
    certificate = aiohttp.ClientConnectorCertificateError(key, ValueError("bad certificate"))
    assert classify(certificate).kind == "fatal"

    request = httpx.Request("POST", "https://example.invalid/v1/chat")
    limited = httpx.Response(429, headers={"retry-after": "7"}, json={"error": {"message": "x"}})
    limited.request = request
    failure = classify(httpx.HTTPStatusError("429", request=request, response=limited))
    assert (failure.kind, failure.delay) == ("rate_limit", 7.0)
    down = httpx.Response(503, text="unavailable", request=request)
    assert classify(httpx.HTTPStatusError("503", request=request, response=down)).kind == (
        "transient"
    )
    info = aiohttp.RequestInfo(yarl.URL("https://x"), "POST", {}, yarl.URL("https://x"))
    refused = aiohttp.ClientResponseError(info, (), status=401, message="Unauthorized")
    assert classify(refused).kind == "fatal"
