"""generateContent and streamGenerateContent: on base models (API key or Vertex AI) and on
tuned models (Vertex `endpoints/N` or `models/N`); countTokens on base models.

Every answer is a pure function of the model and the request body (see `behaviour`); the
thinking config changes the thinking tokens and what fits under `maxOutputTokens`, never the
sampled answer. Response shape: https://ai.google.dev/api/generate-content#generatecontentresponse
Each imitation of a real behaviour cites where it was checked.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from typing import Any, ClassVar, Protocol

from mafine.providers.fake_gemini import behaviour, routing
from mafine.providers.fake_gemini.routing import FakeError, Reply, Request, Route, route
from mafine.providers.fake_gemini.settings import FakeSettings
from mafine.providers.gemini import models
from mafine.seeds import fake_response_rng


class TunedModel(Protocol):
    """What generation reads of a tuned model (`tuning.TunedModel`; tuning imports this
    module, so it is named here by shape, not imported)."""

    base_model: str
    memory: dict[str, str]


class Tuning(Protocol):
    def model(self, number: int) -> TunedModel | None: ...


_METHOD = r":(?P<method>generateContent|streamGenerateContent)"
_FAMILY = re.compile(r"gemini-(?P<major>\d+)(?:\.\d+)?-(?P<size>pro|flash-lite|flash)")
# Thinking tokens the fake spends (https://ai.google.dev/gemini-api/docs/thinking: Gemini 3
# thinks at `high` unless told otherwise, 2.5 dynamically unless given a budget).
_THOUGHTS_BY_LEVEL = {"MINIMAL": 0, "LOW": 40, "MEDIUM": 90, "HIGH": 180}
_DYNAMIC_THOUGHTS = 180
# Levels of a Gemini 3 model the table does not list, by its size (the table's kin).
_LEVELS_BY_SIZE = {
    "flash-lite": ("minimal", "low", "medium", "high"),
    "flash": ("low", "medium", "high"),
    "pro": ("low", "high"),
}


class Generation:
    """Answers generation requests; counts each distinct (path, body) in `generate_keys`."""

    ROUTES: ClassVar[list[Route]] = [
        route(
            "POST", rf"{routing.VERSION}/models/(?P<model>[^/:]+){_METHOD}", "generate", "api_key"
        ),
        route(
            "POST",
            rf"{routing.VERTEX}/publishers/google/models/(?P<model>[^/:]+){_METHOD}",
            "generate",
            "vertex",
        ),
        route(
            "POST",
            rf"{routing.VERTEX}/(?P<collection>endpoints|models)/(?P<id>[^/:]+){_METHOD}",
            "generate",
            "tuned",
        ),
        route(
            "POST",
            rf"{routing.VERSION}/models/(?P<model>[^/:]+):countTokens",
            "count",
            "count_api_key",
        ),
        route(
            "POST",
            rf"{routing.VERTEX}/publishers/google/models/(?P<model>[^/:]+):countTokens",
            "count",
            "count_vertex",
        ),
    ]

    def __init__(
        self,
        settings: Callable[[], FakeSettings],
        tuning: Tuning,
        count_key: Callable[[str], None],
    ) -> None:
        self._settings = settings
        self._tuning = tuning
        self._count_key = count_key

    # ---- routes ----------------------------------------------------------------------
    def api_key(self, request: Request, model: str, method: str) -> Reply:
        routing.require_api_key(request)
        refused = self._refuse_key(request)
        if refused is not None:
            return refused
        return self._generate(request, self.base_model(model), None)

    def vertex(
        self, request: Request, project: str, location: str, model: str, method: str
    ) -> Reply:
        routing.require_auth(request)
        return self._generate(request, self.vertex_model(project, location, model), None)

    # countTokens is free and answers per model and location: the cheapest proof that a key
    # works and a location serves a model (https://ai.google.dev/api/tokens,
    # https://cloud.google.com/vertex-ai/generative-ai/docs/model-reference/count-tokens).
    def count_api_key(self, request: Request, model: str) -> Reply:
        routing.require_api_key(request)
        refused = self._refuse_key(request)
        if refused is not None:
            return refused
        self.base_model(model)
        return Reply.json(200, {"totalTokens": _count(routing.json_body(request))})

    def count_vertex(self, request: Request, project: str, location: str, model: str) -> Reply:
        routing.require_auth(request)
        self.vertex_model(project, location, model)
        body = routing.json_body(request)
        return Reply.json(200, {"totalTokens": _count(body), "totalBillableCharacters": 0})

    def _refuse_key(self, request: Request) -> Reply | None:
        """The Gemini API's answer to a key it does not know: 400 INVALID_ARGUMENT with an
        ErrorInfo reason API_KEY_INVALID, not 401 (continuedev/continue#9330,
        micr0-dev/lexido#54, brunnurs/valuenet#12 show the body)."""
        accepted = self._settings().api_key
        key = request.headers.get("x-goog-api-key") or request.query.get("key")
        if accepted is None or key == accepted:
            return None
        message = "API key not valid. Please pass a valid API key."
        details = [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "API_KEY_INVALID",
                "domain": "googleapis.com",
                "metadata": {"service": "generativelanguage.googleapis.com"},
            },
            {
                "@type": "type.googleapis.com/google.rpc.LocalizedMessage",
                "locale": "en-US",
                "message": message,
            },
        ]
        return Reply.error(400, message, details)

    def tuned(
        self, request: Request, project: str, location: str, collection: str, id: str, method: str
    ) -> Reply:
        routing.require_auth(request)
        tuned = self._tuning.model(int(id)) if id.isdigit() else None
        if tuned is None:
            raise FakeError(404, f"{collection} {id} not found")
        return self._generate(request, f"{collection}/{id}", tuned)

    # ---- answers ---------------------------------------------------------------------
    def base_model(self, model: str) -> str:
        return base_model(self._settings(), model, "generateContent")

    def vertex_model(self, project: str, location: str, model: str) -> str:
        """A served base model on Vertex AI, or Vertex's 404 for it: an unknown or retired
        model, or (with `settings.regional_serving`, the default) a model asked for in a
        location Google does not list for it (`models.TABLE`: 3.1 Flash-Lite is served from
        global/us/eu only, https://docs.cloud.google.com/vertex-ai/generative-ai/docs/models/gemini/3-1-flash-lite,
        checked 2026-12-06; a regional call answers 404: google-gemini/gemini-cli#14262)."""
        name = model.split("/")[-1]
        settings = self._settings()
        misplaced = settings.regional_serving and not models.served_in(name, location)
        if name not in settings.models or misplaced:
            # The text of Vertex AI's 404 (google-gemini/gemini-cli#14262).
            raise FakeError(
                404,
                f"Publisher Model `projects/{project}/locations/{location}/publishers/google/"
                f"models/{name}` was not found or your project does not have access to it. "
                "Please ensure you are using a valid model version. For more information, "
                "see: https://cloud.google.com/vertex-ai/generative-ai/docs/learn/model-versions",
            )
        return name

    def _generate(self, request: Request, model: str, tuned: TunedModel | None) -> Reply:
        body = routing.json_body(request)
        payload = self.answer(request.path, body, model, tuned)
        if request.path.endswith(":streamGenerateContent"):
            data = json.dumps(payload, ensure_ascii=False, sort_keys=True)
            if request.query.get("alt") == "sse":
                return Reply(
                    200, f"data: {data}\r\n\r\n".encode(), {"Content-Type": "text/event-stream"}
                )
            return Reply(200, f"[{data}]".encode(), {"Content-Type": "application/json"})
        return Reply.json(200, payload)

    def answer(
        self, path: str, body: dict[str, Any], model: str, tuned: TunedModel | None
    ) -> dict[str, Any]:
        """The GenerateContentResponse (REST JSON) for one request body: a pure function of
        the model and the body, counted in `generate_keys` under the path and the body."""
        turns = behaviour.conversation(body)
        if not turns:  # also what a send cancelled before its body arrives looks like
            raise FakeError(400, "contents must not be empty")
        canonical = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        self._count_key(hashlib.sha256((path + canonical).encode()).hexdigest())
        base = tuned.base_model if tuned is not None else model
        thoughts = thinking_tokens(base, body)
        rng = fake_response_rng(model, _without_thinking(body))
        text = None
        if tuned is not None:
            text = tuned.memory.get(behaviour.memory_key(turns))
        if text is None:
            text = behaviour.respond(turns, self._settings(), rng)
        finish = "STOP"
        limit = (body.get("generationConfig") or {}).get("maxOutputTokens")
        words = text.split()
        if isinstance(limit, int) and limit > 0:
            # The cap counts thinking and answer together; thinking comes first.
            thoughts = min(thoughts, limit)
            room = limit - thoughts
            if room < len(words):
                text, finish = " ".join(words[:room]), "MAX_TOKENS"
                words = words[:room]
        prompt_words = sum(len(t.split()) for _, t in turns)
        system = body.get("systemInstruction")
        if isinstance(system, dict):
            prompt_words += len(behaviour.part_text(system).split())
        usage = {"promptTokenCount": prompt_words, "totalTokenCount": prompt_words + thoughts}
        content: dict[str, Any] = {"role": "model"}
        if words:
            content["parts"] = [{"text": text}]
            usage["candidatesTokenCount"] = len(words)
            usage["totalTokenCount"] += len(words)
        # Thinking that used the whole cap leaves a candidate without parts and usage without
        # candidatesTokenCount (google/adk-python#1357, googleapis/python-genai#811).
        if thoughts:
            usage["thoughtsTokenCount"] = thoughts
        return {
            "candidates": [{"content": content, "finishReason": finish, "index": 0}],
            "usageMetadata": usage,
            "modelVersion": served_by(base, api_key=path_is_api_key(path)),
        }


def _count(body: dict[str, Any]) -> int:
    """Tokens of a countTokens body: words, as the fake counts them everywhere."""
    return sum(len(text.split()) for _, text in behaviour.conversation(body))


def thinking_tokens(model: str, body: dict[str, Any]) -> int:
    """The thinking tokens a request spends, or the 400 of a thinking config the model
    refuses (https://ai.google.dev/gemini-api/docs/thinking)."""
    config = (body.get("generationConfig") or {}).get("thinkingConfig") or {}
    # Proto JSON parsers take the lowerCamelCase and the proto field name alike
    # (https://protobuf.dev/programming-guides/json/); google-genai 3.6 sends `thinking_level`.
    level = config.get("thinkingLevel", config.get("thinking_level"))
    budget = config.get("thinkingBudget", config.get("thinking_budget"))
    family = _FAMILY.search(model.split("/")[-1])
    if family is None:
        return 0
    major, size = int(family.group("major")), family.group("size")
    if level is not None and budget is not None:  # "cannot use both" (docs above)
        raise FakeError(400, "thinking_level and thinking_budget cannot be set together.")
    if level is not None:
        level = str(level).upper()
        if major < 3:  # "thinking_level with a model earlier than Gemini 3 ... an error"
            raise FakeError(400, "thinking_level is not supported by this model.")
        facts = models.facts_of(model)
        accepted = facts.levels if facts is not None else _LEVELS_BY_SIZE[size]
        if level.lower() not in accepted:
            # Gemini 3.6-3.8 Flash refuse MINIMAL, Pro MINIMAL and MEDIUM, in these words
            # (vercel/ai#18986; https://ai.google.dev/gemini-api/docs/thinking#thinking-levels,
            # checked 2026-12-06; models.TABLE holds each model's levels).
            raise FakeError(
                400,
                f"Thinking level {level} is not supported for this model. Please retry with "
                "other thinking level.",
            )
        return _THOUGHTS_BY_LEVEL.get(level, _DYNAMIC_THOUGHTS)
    if budget is not None:
        budget = int(budget)
        if budget == 0 and size == "pro":  # snailyp/gemini-balance#206, vercel/ai#8027
            raise FakeError(400, "Budget 0 is invalid. This model only works in thinking mode.")
        return _DYNAMIC_THOUGHTS if budget < 0 else min(budget, _DYNAMIC_THOUGHTS)
    return _DYNAMIC_THOUGHTS


def _without_thinking(body: dict[str, Any]) -> str:
    """The body without its thinking config, canonical: what the sampled answer depends on."""
    config = {
        k: v for k, v in (body.get("generationConfig") or {}).items() if k != "thinkingConfig"
    }
    trimmed = {**body, "generationConfig": config} if "generationConfig" in body else body
    return json.dumps(trimmed, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def path_is_api_key(path: str) -> bool:
    """Whether a request came by the Gemini API (API-key) route rather than Vertex AI."""
    return "/projects/" not in path


def served_by(model: str, api_key: bool) -> str:
    """The `modelVersion` a response names (GenerateContentResponse.modelVersion,
    https://ai.google.dev/api/generate-content#generatecontentresponse): the Gemini API answers
    `gemini-3.5-flash` with 3.6 Flash (models.TABLE `api_served_by`; the 3.5 Flash guide links
    the Gemini API's gemini-3.6-flash page, checked 2026-12-06); otherwise the model asked for."""
    facts = models.facts_of(model)
    if api_key and facts is not None and facts.api_served_by:
        return facts.api_served_by
    return model


def base_model(settings: FakeSettings, model: str, purpose: str) -> str:
    """The served base model's short name, or the Gemini API's 404 for it in its words: a
    model closed to new users (Gemini 2.5: thedotmack/claude-mem#3278, kestra-io/docs#5168,
    checked 2026-12-06), or one it does not know (openclaw/openclaw#14036, 10up/classifai#926)."""
    name = model.split("/")[-1]
    if name not in settings.models:
        facts = models.facts_of(name)
        if facts is not None and facts.api_closed_to_new_users:
            raise FakeError(
                404,
                f"This model models/{name} is no longer available to new users. Please update "
                "your code to use a newer model for the latest features and improvements.",
            )
        raise FakeError(
            404,
            f"models/{name} is not found for API version v1beta, or is not supported "
            f"for {purpose}. Call ListModels to see the list of available models and their "
            "supported methods.",
        )
    return name
