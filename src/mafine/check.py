"""`mafine check CONFIG`: prove a Gemini setup with the fewest and cheapest real calls, before
a long run spends money, and print what the run will cost.

The calls, in order (docs/gemini.md, "First real run"):

1. countTokens on the base model, at the generation location: free; it needs working
   credentials and a location that serves the model (credentials, model).
2. one generateContent of a few tokens with the configured thinking setting (thinking).
3. for tuning (Vertex AI): a one-byte object written under `tuning_bucket` (always the same
   name, so nothing piles up); countTokens on the base model at the tuning location and one
   page of tuning jobs there (tuning). No tuning job is created: only a real job proves a
   model tunable, and that costs money.
4. when the configured rate is above the lowest tier's (`LOWEST_TIER_RPM`), a burst of
   `BURST` tiny requests at once: a key on a lower tier answers 429 (rate).

Every failure is one line with its fix. On the fake provider the same calls go to an
in-process fake Gemini, offline.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mafine.errors import MafineError
from mafine.providers.base import CheckOutcome
from mafine.providers.gemini.errors import credential_hint
from mafine.providers.gemini.models import MULTI_REGIONS
from mafine.providers.limits import TIER_LIMITS, classify, resolve_limits
from mafine.registry import resolve

if TYPE_CHECKING:
    from mafine.config import Config
    from mafine.estimate import Estimate
    from mafine.providers.fake_gemini import FakeGemini
    from mafine.providers.gemini import Connection, GeminiProvider

LOWEST_TIER_RPM = TIER_LIMITS["free"][0] or 0.0
BURST = int(LOWEST_TIER_RPM) + 2  # more than the lowest tier allows in a minute
PROBE = "Reply with the single word OK."
PROBE_TOKENS = 64
CHECK_OBJECT = ".mafine-check"


Outcome = CheckOutcome


@dataclass
class Report:
    outcomes: list[Outcome]
    estimate: Estimate | None = None

    @property
    def ok(self) -> bool:
        return all(outcome.ok for outcome in self.outcomes)


def check(config: Config, fake_factory: Callable[..., FakeGemini] | None = None) -> Report:
    """Run every check that applies to the configured provider, and the run's estimate."""
    from mafine.estimate import Assumptions, estimate

    entry = config.provider.entry
    if entry.check is not None:
        return Report(resolve(entry.check)(config), estimate(config))
    if config.provider.name == "local":
        outcomes = [Outcome("provider", True, "local: nothing remote to check")]
        return Report(outcomes, estimate(config))
    thinking_seen: list[int] = []
    if config.provider.name == "fake":
        outcomes = _on_fake(config, fake_factory, thinking_seen)
    else:
        outcomes = _on_gemini(config, thinking_seen)
    thinking = thinking_seen[0] if thinking_seen else 0
    return Report(outcomes, estimate(config, Assumptions(thinking_tokens=thinking)))


def _on_gemini(config: Config, thinking_seen: list[int]) -> list[Outcome]:
    from mafine.providers.gemini import GeminiProvider, resolve_connection

    try:
        connection = resolve_connection(config.provider)
    except MafineError as exc:
        return [Outcome("credentials", False, str(exc))]
    return asyncio.run(_run(GeminiProvider(config.provider, connection), config, thinking_seen))


def _on_fake(
    config: Config, fake_factory: Callable[..., FakeGemini] | None, thinking_seen: list[int]
) -> list[Outcome]:
    from mafine.providers import FAKE_TUNING_BUCKET
    from mafine.providers.fake_gemini import FakeGemini
    from mafine.providers.gemini import GeminiProvider

    settings = config.provider.gemini
    gemini = settings.model_copy(
        update={"tuning_bucket": settings.tuning_bucket or FAKE_TUNING_BUCKET}
    )
    provider_config = config.provider.model_copy(update={"gemini": gemini})
    with (fake_factory or FakeGemini)(config.provider.fake) as fake:
        provider = GeminiProvider(provider_config, _fake_connection(fake.url, settings))
        return asyncio.run(_run(provider, config, thinking_seen, paced_by_tier=False))


def _fake_connection(url: str, settings: Any) -> Connection:
    """The fake's connection at the configured locations, as the real run would use them."""
    from mafine.providers import fake_connection
    from mafine.providers.gemini import Connection

    base = fake_connection(url)
    return Connection(
        **{
            **base.__dict__,
            "location": settings.location,
            "tuning_location": settings.tuning_location,
        }
    )


async def _run(
    provider: GeminiProvider, config: Config, thinking_seen: list[int], paced_by_tier: bool = True
) -> list[Outcome]:
    try:
        return await _checks(provider, config, thinking_seen, paced_by_tier)
    finally:
        await provider.aclose()


async def _checks(
    provider: GeminiProvider, config: Config, thinking_seen: list[int], paced_by_tier: bool
) -> list[Outcome]:
    model = config.provider.model
    outcomes = await _credentials_and_model(provider, model)
    if not all(outcome.ok for outcome in outcomes):
        return outcomes  # nothing else can pass without them
    outcomes.append(await _thinking(provider, model, thinking_seen))
    outcomes.extend(_tuning(provider, model))
    outcomes.append(await _rate(provider, config, paced_by_tier))
    return outcomes


async def _credentials_and_model(provider: GeminiProvider, model: str) -> list[Outcome]:
    where = f"in {provider.connection.location}" if provider.vertex else "on the Gemini API"
    try:
        await provider.client.aio.models.count_tokens(model=model, contents=PROBE)
    except Exception as exc:
        error = _as_error(provider, exc, model)
        status = _status(exc)
        if status == 404:
            return [
                Outcome("credentials", True, "accepted (the model lookup got past them)"),
                Outcome("model", False, str(error)),
            ]
        if status is None:  # no answer at all: credentials not found, or no network
            hint = credential_hint(provider.connection, provider.settings)
            return [Outcome("credentials", False, f"{error}; check {hint}")]
        return [Outcome("credentials", False, str(error))]
    return [
        Outcome("credentials", True, f"accepted ({_credentials(provider)})"),
        Outcome("model", True, f"{model} is served {where}"),
    ]


async def _thinking(provider: GeminiProvider, model: str, thinking_seen: list[int]) -> Outcome:
    from mafine.providers.gemini import generation

    request = _probe_request(model)
    sent = (
        ", ".join(f"{key}={value}" for key, value in provider.thinking.items())
        if provider.thinking
        else "none (the model's default)"
    )
    try:
        response = await provider.client.aio.models.generate_content(
            model=model,
            contents=provider.contents(request),
            config=provider.generation_config(request),
        )
    except Exception as exc:
        return Outcome(
            "thinking",
            False,
            f"{_as_error(provider, exc, model)} (sent {sent}); set "
            "provider.gemini.thinking_level / thinking_budget to a value the model accepts "
            "(docs/gemini.md, Thinking)",
        )
    completion = generation.completion_from_response(response)
    thinking_seen.append(completion.usage.thoughts_tokens)
    detail = (
        f"{sent} accepted; the model answered ({completion.finish_reason}) with "
        f"{completion.usage.thoughts_tokens} thinking tokens"
    )
    if completion.finish_reason == "MAX_TOKENS" and not completion.text.strip():
        return Outcome(
            "thinking",
            False,
            f"thinking used all {PROBE_TOKENS} tokens of a one-word answer and left no text; "
            "lower provider.gemini.thinking_level / thinking_budget (lowest is the default)",
        )
    return Outcome("thinking", True, detail)


def _tuning(provider: GeminiProvider, model: str) -> list[Outcome]:
    from mafine.providers.gemini.settings import TUNING_ROUTES
    from mafine.providers.gemini.tuning import join_gcs

    if not provider.capabilities.tuning:
        return [Outcome("tuning", False, TUNING_ROUTES)]
    outcomes = []
    bucket = provider.settings.tuning_bucket
    if not bucket:
        outcomes.append(
            Outcome("bucket", False, "set provider.gemini.tuning_bucket (gs://bucket/prefix)")
        )
    else:
        bucket_name, object_name = join_gcs(bucket, CHECK_OBJECT)
        try:
            blob = provider.storage_client().bucket(bucket_name).blob(object_name)
            blob.upload_from_string(b"\n", content_type="text/plain")
            outcomes.append(Outcome("bucket", True, f"gs://{bucket_name}/{object_name} written"))
        except MafineError as exc:
            outcomes.append(Outcome("bucket", False, str(exc)))
        except Exception as exc:
            outcomes.append(
                Outcome(
                    "bucket",
                    False,
                    f"cannot write to {bucket} ({type(exc).__name__}: "
                    f"{provider.redact(str(exc))[:200]}); give the credentials "
                    "roles/storage.objectAdmin on the bucket, or set another "
                    "provider.gemini.tuning_bucket",
                )
            )
    outcomes.append(_tunable(provider, model))
    return outcomes


def _tunable(provider: GeminiProvider, model: str) -> Outcome:
    location = provider.connection.tuning_location
    if location in MULTI_REGIONS:
        return Outcome(
            "tuning",
            False,
            f"Vertex AI does not tune in {location}; set provider.gemini.tuning_location to a "
            "region such as us-central1",
        )
    client = provider.client_for_location(location)
    try:
        client.models.count_tokens(model=model, contents=PROBE)
    except Exception as exc:
        if _status(exc) == 404:
            return Outcome(
                "tuning",
                False,
                f"{model} is not served in {location}, so it cannot be tuned there; set "
                "provider.gemini.tuning_location to a region that serves it, or tune a model "
                "that regions serve (Gemini 2.5)",
            )
        return Outcome("tuning", False, str(_as_error(provider, exc, model)))
    try:
        provider.control_call(lambda: client.tunings.list(config={"page_size": 1}), model)
    except MafineError as exc:
        return Outcome("tuning", False, f"{exc} (listing tuning jobs in {location})")
    return Outcome(
        "tuning",
        True,
        f"{model} is served in {location} and its tuning API answers (no job is created: "
        "only a real job proves the model tunable)",
    )


async def _rate(provider: GeminiProvider, config: Config, paced_by_tier: bool) -> Outcome:
    settings = config.provider.gemini
    rpm = resolve_limits(settings, use_tier=paced_by_tier).requests_per_minute
    if rpm is None:
        return Outcome("rate", True, "no client-side rate configured: nothing to prove")
    if rpm <= LOWEST_TIER_RPM:
        return Outcome("rate", True, f"{rpm:g} requests/min is within every tier")
    burst = min(BURST, int(rpm))
    request = _probe_request(config.provider.model)
    request_config = provider.generation_config(request)
    contents = provider.contents(request)

    async def one() -> BaseException | None:
        try:
            await provider.client.aio.models.generate_content(
                model=config.provider.model, contents=contents, config=request_config
            )
        except Exception as exc:
            return exc
        return None

    results = await asyncio.gather(*(one() for _ in range(burst)))
    refused = [exc for exc in results if exc is not None]
    limited = [exc for exc in refused if classify(exc).kind in ("rate_limit", "quota")]
    if limited:
        return Outcome(
            "rate",
            False,
            f"{len(limited)} of {burst} requests sent at once answered 429: the quota does "
            f"not give the configured {rpm:g} requests/min ({settings.tier}); set "
            "provider.gemini.tier to the key's tier (free: 10/min) or lower "
            "provider.gemini.requests_per_minute",
        )
    if refused:
        return Outcome("rate", False, str(_as_error(provider, refused[0], config.provider.model)))
    return Outcome(
        "rate",
        True,
        f"{burst} requests at once passed: the quota is above the lowest tier's "
        f"{LOWEST_TIER_RPM:g}/min (the configured {rpm:g}/min itself shows in the run: few "
        "429 notes)",
    )


def _credentials(provider: GeminiProvider) -> str:
    if provider.vertex:
        return f"Vertex AI, project {provider.connection.project}"
    return f"the API key in {provider.settings.api_key_env}"


def _probe_message() -> Any:
    from mafine.artifacts import Message

    return Message(role="user", content=PROBE)


def _probe_request(model: str) -> Any:
    from mafine.providers.base import GenerationRequest, Sampling

    return GenerationRequest(
        model=model,
        messages=(_probe_message(),),
        sampling=Sampling(temperature=0.0, top_p=1.0, max_output_tokens=PROBE_TOKENS),
        sample_index=0,
        seed=0,
    )


def _status(exc: BaseException) -> int | None:
    from mafine.providers.limits import http_error

    error = http_error(exc)
    return error.code if error else None


def _as_error(provider: GeminiProvider, exc: Exception, model: str) -> MafineError:
    """The provider's one-line message for an exception (the key never in it)."""
    try:
        return provider.user_error(exc, model)
    except Exception:  # not an error the provider knows: name it, nothing more
        return MafineError(f"{type(exc).__name__}: {provider.redact(str(exc))[:200]}")


def render(report: Report, config: Config) -> list[Any]:
    """The check lines, then the estimate (rich renderables)."""
    from mafine.estimate import render_estimate

    lines: list[Any] = [outcome.line() for outcome in report.outcomes]
    if report.estimate is not None:
        lines.extend(render_estimate(report.estimate, config))
    return lines
