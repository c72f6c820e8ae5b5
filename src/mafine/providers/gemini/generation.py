"""Gemini's generation wire format: requests built from ours, responses read into ours.

Pure functions of google-genai types or REST JSON (the batch files hold REST JSON)."""

from __future__ import annotations

from typing import Any

from mafine.artifacts import Completion, Message, Usage
from mafine.providers.base import GenerationRequest
from mafine.providers.gemini import models
from mafine.providers.gemini.settings import GeminiSettings

# Finish reasons of a response that carries no usable text: asked again (bounded).
BLOCKED = frozenset(
    {"SAFETY", "RECITATION", "PROHIBITED_CONTENT", "BLOCKLIST", "SPII", "IMAGE_SAFETY",
     "NO_CANDIDATES", "OTHER", "LANGUAGE", "MALFORMED_FUNCTION_CALL"}
)  # fmt: skip


def contents(request: GenerationRequest) -> list[Any]:
    """The request's messages as google-genai Contents."""
    from google.genai import types

    return [
        types.Content(
            role="user" if message.role == "user" else "model",
            parts=[types.Part(text=message.content)],
        )
        for message in request.messages
    ]


def thinking(base_model: str, settings: GeminiSettings) -> dict[str, Any] | None:
    """The REST `thinkingConfig` for a base model, or None to send none.

    `base_model` is the configured base model, also for its tuned models, so base and tuned
    models think alike. `lowest` is the lowest level the model accepts (`models.TABLE`; a
    Gemini 3 model the table does not list gets the safest level, low). A name that is no
    Gemini model gets none (its own default)."""
    known = models.family(base_model)
    if known is None:
        return None
    if known.thinking_control == "level":
        level = settings.thinking_level
        if level == "model_default":
            return None
        chosen = models.lowest_level(base_model) if level == "lowest" else level
        return {"thinkingLevel": str(chosen).upper()}  # the REST enum, as google-genai sends it
    budget = settings.thinking_budget
    if budget == "model_default":
        return None
    return {"thinkingBudget": models.lowest_budget(base_model) if budget == "lowest" else budget}


def generation_config(request: GenerationRequest, thinking: dict[str, Any] | None = None) -> Any:
    """The request's sampling (and thinking) as a google-genai GenerateContentConfig."""
    from google.genai import types

    thinking_config = None
    if thinking is not None:
        thinking_config = types.ThinkingConfig(
            thinking_level=thinking.get("thinkingLevel"),
            thinking_budget=thinking.get("thinkingBudget"),
        )
    return types.GenerateContentConfig(
        temperature=request.sampling.temperature,
        top_p=request.sampling.top_p,
        max_output_tokens=request.sampling.max_output_tokens,
        candidate_count=1,
        seed=request.seed,
        thinking_config=thinking_config,
    )


def to_rest_contents(messages: list[Message]) -> list[dict[str, Any]]:
    """Messages as REST `contents` (also the conversational tuning format's)."""
    return [
        {"role": "user" if m.role == "user" else "model", "parts": [{"text": m.content}]}
        for m in messages
    ]


def rest_request(
    request: GenerationRequest, thinking: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The request as Gemini's REST JSON (what a Vertex batch input line holds)."""
    config: dict[str, Any] = {
        "temperature": request.sampling.temperature,
        "topP": request.sampling.top_p,
        "maxOutputTokens": request.sampling.max_output_tokens,
        "candidateCount": 1,
        "seed": request.seed,
    }
    if thinking is not None:
        config["thinkingConfig"] = thinking
    return {"contents": to_rest_contents(list(request.messages)), "generationConfig": config}


def estimate_tokens(request: GenerationRequest) -> int:
    """Input tokens of a request, roughly (4 characters a token), for the token limiter."""
    return sum(len(m.content) for m in request.messages) // 4 + 1


def is_blocked(completion: Completion) -> bool:
    """No usable text: blocked, no candidates, or empty without hitting the length limit."""
    if completion.finish_reason in BLOCKED:
        return True
    return not completion.text.strip() and completion.finish_reason != "MAX_TOKENS"


def completion_from_response(response: Any) -> Completion:
    """A google-genai GenerateContentResponse as a Completion; never raises on odd ones."""
    usage = response.usage_metadata
    version = getattr(response, "model_version", None) or None
    tokens = Usage(
        prompt_tokens=(usage.prompt_token_count or 0) if usage else 0,
        output_tokens=(usage.candidates_token_count or 0) if usage else 0,
        thoughts_tokens=(usage.thoughts_token_count or 0) if usage else 0,
        total_tokens=(usage.total_token_count or 0) if usage else 0,
    )
    if not response.candidates:
        feedback = response.prompt_feedback
        reason = feedback.block_reason.name if feedback and feedback.block_reason else None
        return Completion(
            text="", finish_reason=_blocked_reason(reason), usage=tokens, model_version=version
        )
    candidate = response.candidates[0]
    parts = candidate.content.parts if candidate.content and candidate.content.parts else []
    text = "".join(part.text for part in parts if part.text and not part.thought)
    reason = candidate.finish_reason.name if candidate.finish_reason else None
    return Completion(text=text, finish_reason=reason, usage=tokens, model_version=version)


def completion_from_rest(payload: dict[str, Any]) -> Completion:
    """A GenerateContentResponse in REST JSON (a batch result line) as a Completion."""
    usage = payload.get("usageMetadata") or {}
    tokens = Usage(
        prompt_tokens=int(usage.get("promptTokenCount") or 0),
        output_tokens=int(usage.get("candidatesTokenCount") or 0),
        thoughts_tokens=int(usage.get("thoughtsTokenCount") or 0),
        total_tokens=int(usage.get("totalTokenCount") or 0),
    )
    version = payload.get("modelVersion")
    version = str(version) if version else None
    candidates = payload.get("candidates") or []
    if not candidates:
        reason = (payload.get("promptFeedback") or {}).get("blockReason")
        return Completion(
            text="", finish_reason=_blocked_reason(reason), usage=tokens, model_version=version
        )
    candidate = candidates[0] or {}
    parts = (candidate.get("content") or {}).get("parts") or []
    text = "".join(
        str(p.get("text") or "") for p in parts if isinstance(p, dict) and not p.get("thought")
    )
    return Completion(
        text=text, finish_reason=candidate.get("finishReason"), usage=tokens, model_version=version
    )


def _blocked_reason(reason: str | None) -> str:
    if not reason or reason.endswith("UNSPECIFIED"):
        return "NO_CANDIDATES"
    return reason if reason in BLOCKED else f"BLOCKED_{reason}"
