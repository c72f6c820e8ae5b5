"""generateContent and streamGenerateContent: on base models (API key or Vertex AI) and on
tuned models (Vertex `endpoints/N` or `models/N`).

Every answer is a pure function of the model and the request body (see `behaviour`).
Response shape: https://ai.google.dev/api/generate-content#generatecontentresponse
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

from mafine.providers.fake_gemini import behaviour
from mafine.providers.fake_gemini.routing import (
    PARENT,
    VERSION,
    FakeError,
    Reply,
    Request,
    Route,
    json_body,
    require_api_key,
    require_auth,
    route,
)
from mafine.providers.fake_gemini.settings import FakeSettings

if TYPE_CHECKING:
    from mafine.providers.fake_gemini.tuning import TunedModel, Tuning

_METHOD = r":(?P<method>generateContent|streamGenerateContent)"


class Generation:
    """Answers generation requests; counts each distinct (path, body) in `generate_keys`."""

    ROUTES: ClassVar[list[Route]] = [
        route("POST", rf"{VERSION}/models/(?P<model>[^/:]+){_METHOD}", "generate", "api_key"),
        route(
            "POST",
            rf"{VERSION}{PARENT}/publishers/google/models/(?P<model>[^/:]+){_METHOD}",
            "generate",
            "vertex",
        ),
        route(
            "POST",
            rf"{VERSION}{PARENT}/(?P<collection>endpoints|models)/(?P<id>[^/:]+){_METHOD}",
            "generate",
            "tuned",
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
        require_api_key(request)
        return self._generate(request, self.base_model(model), None)

    def vertex(
        self, request: Request, project: str, location: str, model: str, method: str
    ) -> Reply:
        require_auth(request)
        return self._generate(request, self.base_model(model), None)

    def tuned(
        self, request: Request, project: str, location: str, collection: str, id: str, method: str
    ) -> Reply:
        require_auth(request)
        tuned = self._tuning.model(int(id)) if id.isdigit() else None
        if tuned is None:
            raise FakeError(404, f"{collection} {id} not found")
        return self._generate(request, f"{collection}/{id}", tuned)

    # ---- answers ---------------------------------------------------------------------
    def base_model(self, model: str) -> str:
        return base_model(self._settings(), model, "generateContent")

    def _generate(self, request: Request, model: str, tuned: TunedModel | None) -> Reply:
        body = json_body(request)
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
        material = json.dumps({"model": model, "request": canonical}, sort_keys=True)
        rng = random.Random(int.from_bytes(hashlib.sha256(material.encode()).digest()[:16], "big"))
        text = None
        if tuned is not None:
            text = tuned.memory.get(behaviour.memory_key(turns))
        if text is None:
            text = behaviour.respond(turns, self._settings(), rng)
        finish = "STOP"
        limit = (body.get("generationConfig") or {}).get("maxOutputTokens")
        words = text.split()
        if isinstance(limit, int) and 0 < limit < len(words):
            text, finish = " ".join(words[:limit]), "MAX_TOKENS"
            words = words[:limit]
        prompt_words = sum(len(t.split()) for _, t in turns)
        system = body.get("systemInstruction")
        if isinstance(system, dict):
            prompt_words += len(behaviour.part_text(system).split())
        return {
            "candidates": [
                {
                    "content": {"role": "model", "parts": [{"text": text}]},
                    "finishReason": finish,
                    "index": 0,
                }
            ],
            "usageMetadata": {
                "promptTokenCount": prompt_words,
                "candidatesTokenCount": len(words),
                "totalTokenCount": prompt_words + len(words),
            },
            "modelVersion": tuned.base_model if tuned is not None else model,
        }


def base_model(settings: FakeSettings, model: str, purpose: str) -> str:
    """The served base model's short name, or the 404 of a retired or unknown model."""
    name = model.split("/")[-1]
    if name not in settings.models:
        raise FakeError(
            404,
            f"models/{name} is not found for API version v1beta, or is not supported "
            f"for {purpose}.",
        )
    return name
