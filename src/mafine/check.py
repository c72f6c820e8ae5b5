"""`mafine check CONFIG`: run the configured provider's preflight (its registry entry's
`check`), then print what the run will cost. A provider with no `check` has nothing remote to
check.

The checks of the gemini and fake providers (`check_gemini`, `check_fake`) prove a Gemini setup
with the fewest and cheapest real calls, before a long run spends money. The calls, in order
(docs/gemini.md, "First real run"):

1. countTokens on the base model, at the generation location: free; it needs working
   credentials and a location that serves the model (credentials, model).
2. one generateContent of a few tokens with the configured thinking setting (thinking).
3. for tuning (Vertex AI): a one-byte object written under `tuning_bucket` (always the same
   name, so nothing piles up; Vertex AI reads the training file as its own service agent,
   which the line names); whether Google lists the base model as tunable
   (`providers.gemini.models.TABLE`, dated) and one page of tuning jobs at the tuning location
   (tuning). A base model's serving locations say nothing about tuning: tuning runs in a
   region whatever they are. No tuning job is created: that costs money.
4. when the configured rate is above the lowest tier's (`LOWEST_TIER_RPM`), a burst of
   `BURST` tiny requests at once: a key on a lower tier answers 429 (rate).

Every failure is one line with its fix. On the fake provider the same calls go to an
in-process fake Gemini, offline.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mafine.errors import MafineError
from mafine.guard import run_async
from mafine.providers.base import CheckOutcome
from mafine.providers.gemini import models
from mafine.providers.gemini.errors import credential_hint
from mafine.providers.limits import TIER_LIMITS, classify, resolve_limits, unanswered
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


Outcome = CheckOutcome  # the name the checks below use


@dataclass(frozen=True)
class Measured(CheckOutcome):
    """A check that also measured what the estimate should assume: thinking tokens billed per
    response."""

    thinking_tokens: int = 0


@dataclass
class Report:
    outcomes: list[CheckOutcome]
    estimate: Estimate | None = None

    @property
    def ok(self) -> bool:
        return all(outcome.ok for outcome in self.outcomes)


def check(config: Config, **seams: Any) -> Report:
    """The configured provider's checks (its registry entry's `check`), and the run's estimate.
    `seams` go to the entry's check (tests: `fake_factory` for the fake's)."""
    from mafine.estimate import Assumptions, estimate

    entry = config.provider.entry
    if entry.check is None:
        outcomes = [CheckOutcome("provider", True, f"{entry.name}: nothing remote to check")]
    else:
        try:
            outcomes = list(resolve(entry.check)(config, **seams))
        except MafineError:
            raise
        except Exception as exc:  # its HTTP client's error, untranslated: a failed check
            line = unanswered(entry.name, exc)
            if line is None:
                raise
            outcomes = [CheckOutcome("provider", False, line)]
    thinking = max((o.thinking_tokens for o in outcomes if isinstance(o, Measured)), default=0)
    return Report(outcomes, estimate(config, Assumptions(thinking_tokens=thinking)))


def check_gemini(config: Config) -> list[CheckOutcome]:
    """The gemini provider's checks (its registry entry's `check`)."""
    thinking_seen: list[int] = []
    return _measured(_on_gemini(config, thinking_seen), thinking_seen)


def check_fake(
    config: Config, fake_factory: Callable[..., FakeGemini] | None = None
) -> list[CheckOutcome]:
    """The same checks against an in-process fake Gemini, offline (the fake's `check`)."""
    thinking_seen: list[int] = []
    return _measured(_on_fake(config, fake_factory, thinking_seen), thinking_seen)


def _measured(outcomes: list[CheckOutcome], thinking_seen: list[int]) -> list[CheckOutcome]:
    """The thinking check carrying the thinking tokens it saw, for the estimate."""
    if not thinking_seen:
        return outcomes
    return [
        Measured(o.name, o.ok, o.detail, thinking_seen[0]) if o.name == "thinking" else o
        for o in outcomes
    ]


def _on_gemini(config: Config, thinking_seen: list[int]) -> list[Outcome]:
    from mafine.providers.gemini import GeminiProvider, resolve_connection

    try:
        connection = resolve_connection(config.provider)
    except MafineError as exc:
        return [Outcome("credentials", False, str(exc))]
    provider = GeminiProvider(config.provider, connection)
    return run_async(lambda: _run(provider, config, thinking_seen))


def _on_fake(
    config: Config, fake_factory: Callable[..., FakeGemini] | None, thinking_seen: list[int]
) -> list[Outcome]:
    from mafine.providers import FAKE_STATE_DIR, FAKE_TUNING_BUCKET
    from mafine.providers.fake_gemini import FakeGemini
    from mafine.providers.gemini import GeminiProvider

    settings = config.provider.gemini
    gemini = settings.model_copy(
        update={"tuning_bucket": settings.tuning_bucket or FAKE_TUNING_BUCKET}
    )
    provider_config = config.provider.model_copy(update={"gemini": gemini})
    # An existing run's fake state (its tuned models), as `mafine run` would see it.
    state = Path(config.run_dir) / FAKE_STATE_DIR if config.run_dir is not None else None
    state = state if state is not None and state.is_dir() else None
    with (fake_factory or FakeGemini)(config.provider.fake, state_dir=state) as fake:
        provider = GeminiProvider(provider_config, _fake_connection(fake.url, settings))
        return run_async(lambda: _run(provider, config, thinking_seen, paced_by_tier=False))


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
    tuned = _tuned_models(config)
    if tuned:  # tuned models think as their base is told to: prove they accept it too
        outcomes.append(await _thinking(provider, tuned[0], [], name="thinking (tuned)"))
    outcomes.extend(_tuning(provider, model, config.finetune.adapter_size))
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


def _tuned_models(config: Config) -> list[str]:
    """The serving names of the tuned models the run directory already holds, from its newest
    iteration that has any (empty before the first tuning)."""
    from mafine.artifacts import ModelRecord
    from mafine.jsonl import read_rows
    from mafine.rundir import iteration_label

    if config.run_dir is None:
        return []
    for iteration in range(config.iterations, 0, -1):
        path = Path(config.run_dir) / iteration_label(iteration) / "models.jsonl"
        if not path.is_file():
            continue
        served = [
            record.serving_model
            for record in read_rows(path, ModelRecord)
            if record.state == "succeeded" and record.serving_model
        ]
        if served:
            return served
    return []


async def _thinking(
    provider: GeminiProvider, model: str, thinking_seen: list[int], name: str = "thinking"
) -> Outcome:
    from mafine.providers.gemini import generation

    request = _probe_request(model)
    sent = (
        ", ".join(f"{key}={value}" for key, value in provider.thinking.items())
        if provider.thinking
        else "none (the model's default)"
    )
    try:
        response = await provider.client_for(model).aio.models.generate_content(
            model=model,
            contents=provider.contents(request),
            config=provider.generation_config(request),
        )
    except Exception as exc:
        return Outcome(
            name,
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
            name,
            False,
            f"{model}: thinking used all {PROBE_TOKENS} tokens of a one-word answer and left "
            "no text; lower provider.gemini.thinking_level / thinking_budget (lowest is the "
            "default)",
        )
    return Outcome(name, True, detail if name == "thinking" else f"{model}: {detail}")


def _tuning(provider: GeminiProvider, model: str, adapter_size: int) -> list[Outcome]:
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
            outcomes.append(
                Outcome(
                    "bucket",
                    True,
                    f"gs://{bucket_name}/{object_name} written with your credentials; Vertex "
                    "AI reads the training file as its service agent "
                    "(service-PROJECT_NUMBER@gcp-sa-aiplatform.iam.gserviceaccount.com), which "
                    "needs roles/storage.objectViewer on a bucket of another project",
                )
            )
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
    outcomes.append(_tunable(provider, model, adapter_size))
    return outcomes


def _tunable(provider: GeminiProvider, model: str, adapter_size: int) -> Outcome:
    location = provider.connection.tuning_location
    if location in models.MULTI_REGIONS:
        return Outcome(
            "tuning",
            False,
            f"Vertex AI does not tune in {location}; set provider.gemini.tuning_location to a "
            "region such as us-central1",
        )
    tunable = ", ".join(
        name for name, facts in models.TABLE.items() if facts.tunable and not facts.vertex_retired
    )
    facts = models.facts_of(model)
    if facts is not None and facts.retired_on_vertex():
        return Outcome(
            "tuning",
            False,
            f"{model} was retired on Vertex AI on {facts.vertex_retired}, its tuning and tuned "
            f"models with it; tune one of {tunable} (models.TABLE, {models.TABLE_AS_OF})",
        )
    if facts is not None and not facts.tunable:
        return Outcome(
            "tuning",
            False,
            f"Vertex AI does not list {model} among the models it tunes (as of "
            f"{models.TABLE_AS_OF}); tune one of {tunable}",
        )
    if facts is not None and adapter_size not in facts.adapter_sizes:
        sizes = ", ".join(str(size) for size in facts.adapter_sizes)
        return Outcome(
            "tuning",
            False,
            f"{model} tunes with adapter sizes {sizes}; set finetune.adapter_size to one",
        )
    client = provider.client_for_location(location)
    try:
        provider.control_call(lambda: client.tunings.list(config={"page_size": 1}), model)
    except MafineError as exc:
        return Outcome("tuning", False, f"{exc} (listing tuning jobs in {location})")
    listed = (
        f"Google lists {model} as tunable (as of {models.TABLE_AS_OF})"
        if facts is not None
        else f"{model} is not in mafine's table of tunable models (as of "
        f"{models.TABLE_AS_OF}): only a real job shows whether Vertex AI tunes it"
    )
    return Outcome(
        "tuning",
        True,
        f"{listed}, and the tuning API in {location} answers (no job is created)",
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
