"""`mafine check` for the vllm provider: prove every configured server can run the config
before anything is spent (the `ProviderEntry.check` contract).

Per server, in order, stopping at the first failure: reachable; serving `provider.model`;
LoRA enabled (`--enable-lora`); runtime loading allowed (`VLLM_ALLOW_RUNTIME_LORA_UPDATING`);
a probe adapter (all-zero, the config's LoRA rank, written where the run directory will be)
loads, which proves `--max-lora-rank` and that the server can read that storage; one token
through it, after which the server's metrics say its `--max-loras`. The probe is unloaded.
"""

from __future__ import annotations

import re
import secrets
from pathlib import Path
from typing import Any

from mafine.errors import MafineError
from mafine.providers.base import CheckOutcome
from mafine.providers.vllm import adapters
from mafine.providers.vllm.settings import VllmSettings

PROBE_DIR = ".mafine-vllm-check"  # beside the run directory, on the same storage
MAX_LORA = re.compile(r'vllm:lora_requests_info\{[^}]*max_lora="(\d+)"')
RANK_TOO_HIGH = re.compile(r"LoRA rank (\d+) is greater than max_lora_rank (\d+)")


def slots_needed(config: Any) -> int:
    """Adapters one debate serves at once: every agent model and the zero adapter."""
    return config.agents.count + config.agents.critics + 1


def check(config: Any) -> list[CheckOutcome]:
    try:
        from mafine.providers.vllm.servers import api_key
    except ImportError:
        from mafine.providers.vllm.provider import EXTRA_MESSAGE

        return [CheckOutcome("extra", False, EXTRA_MESSAGE)]
    settings: VllmSettings = config.provider.settings_of("vllm")
    try:
        key = api_key(settings)
    except MafineError as exc:
        return [CheckOutcome("api key", False, str(exc))]
    outcomes: list[CheckOutcome] = []
    for url in settings.urls:
        outcomes += _check_server(url, key, config, settings, len(settings.urls) > 1)
        if not outcomes[-1].ok:
            break
    return outcomes


def _check_server(
    url: str, key: str, config: Any, settings: VllmSettings, named: bool
) -> list[CheckOutcome]:
    from mafine.providers.vllm.servers import error_message, httpx, root_of

    label = (lambda name: f"{name} ({url})") if named else (lambda name: name)
    outcomes: list[CheckOutcome] = []

    def ok(name: str, detail: str) -> None:
        outcomes.append(CheckOutcome(label(name), True, detail))

    def fail(name: str, detail: str) -> list[CheckOutcome]:
        outcomes.append(CheckOutcome(label(name), False, detail))
        return outcomes

    base = config.provider.model
    timeout = httpx.Timeout(settings.request_timeout_s, connect=settings.connect_timeout_s)
    with httpx.Client(timeout=timeout, headers={"Authorization": f"Bearer {key}"}) as client:
        try:
            models = client.get(f"{url}/models")
        except httpx.TransportError as exc:
            return fail(
                "server",
                f"no vLLM server answers at {url} ({type(exc).__name__}); start one with "
                "`mafine serve CONFIG` or fix provider.vllm.base_url",
            )
        if models.status_code != 200:
            return fail("server", f"{url}/models answered {error_message(models)}")
        ok("server", f"{url} answers")
        served = [m["id"] for m in models.json().get("data", []) if not m.get("parent")]
        if base not in served:
            return fail(
                "base model",
                f"the server serves {', '.join(served) or 'nothing'}, not provider.model "
                f"{base!r}: start it with --served-model-name {base}, or set provider.model",
            )
        ok("base model", base)
        metrics = client.get(f"{root_of(url)}/metrics").text
        if "vllm:lora_requests_info" not in metrics:
            return fail("lora", "the server runs without LoRA: restart it with --enable-lora")
        probe = f"mafine-check-{secrets.token_hex(4)}"
        folder = _probe_adapter(config)
        seen_as = adapters.server_path(folder, settings.path_map)
        loaded = client.post(
            f"{url}/load_lora_adapter", json={"lora_name": probe, "lora_path": seen_as}
        )
        if loaded.status_code == 404 and "detail" in loaded.text:
            return fail(
                "runtime loading",
                "the server refuses runtime LoRA loading: restart it with the environment "
                "variable VLLM_ALLOW_RUNTIME_LORA_UPDATING=True",
            )
        ok("lora", "enabled, runtime loading allowed")
        message = error_message(loaded) if loaded.status_code != 200 else ""
        rank = RANK_TOO_HIGH.search(message)
        if rank:
            return fail(
                "lora rank",
                f"provider.local.lora_rank is {rank.group(1)}, the server's --max-lora-rank "
                f"{rank.group(2)}: restart it with --max-lora-rank {rank.group(1)}",
            )
        if loaded.status_code != 200:
            return fail(
                "adapter folder",
                f"the server cannot read adapters at {seen_as} ({message}): put run_dir on "
                "storage the servers read, or map it with provider.vllm.path_map",
            )
        try:
            ok("adapter folder", f"the server reads {seen_as}")
            client.post(
                f"{url}/chat/completions",
                json={
                    "model": probe,
                    "messages": [{"role": "user", "content": "Hi"}],
                    "max_tokens": 1,
                },
            )
            slots = MAX_LORA.search(client.get(f"{root_of(url)}/metrics").text)
            needed = slots_needed(config)
            if slots is None:
                return fail("lora slots", "the server's metrics do not say its --max-loras")
            if int(slots.group(1)) < needed:
                return fail(
                    "lora slots",
                    f"the server has --max-loras {slots.group(1)}; this config serves {needed} "
                    f"adapters at once (agent models + the zero adapter): restart it with "
                    f"--max-loras {needed}",
                )
            ok("lora slots", f"--max-loras {slots.group(1)} >= {needed}")
        finally:
            client.post(f"{url}/unload_lora_adapter", json={"lora_name": probe})
    return outcomes


def _probe_adapter(config: Any) -> Path:
    """The all-zero adapter of the config's rank, beside the run directory (reused)."""
    local = config.provider.local
    settings = config.provider.settings_of("vllm")
    folder = Path(config.run_dir).resolve().parent / PROBE_DIR / f"zero-r{local.lora_rank}"
    return adapters.write_zero_adapter(settings.weights or config.provider.model, local, folder)
