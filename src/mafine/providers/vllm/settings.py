"""Settings of the vllm provider (`provider.vllm` in the config): where the servers are, what
they serve, and how `mafine serve` starts one. Plain pydantic: no openai, no torch.

`provider.model` is the base model as the servers name it (`--served-model-name`); the
adapters are trained by the local provider's trainer with the `provider.local` settings
(rank, learning rate, ...), on the weights named by `weights`.
"""

from __future__ import annotations

from pydantic import Field, field_validator

from mafine.schema import Strict, mutable_field


class VllmSettings(Strict):
    """How mafine reaches OpenAI-compatible vLLM servers and keeps their LoRA adapters."""

    base_url: str | list[str] = mutable_field(
        "http://127.0.0.1:8000/v1",
        description="the server's OpenAI-style URL ending in /v1, or a list of replicas "
        "serving the same base (requests are spread across them)",
    )
    api_key_env: str | None = mutable_field(
        None, description="NAME of the environment variable holding the servers' --api-key"
    )
    weights: str | None = Field(
        None,
        description="the base model's weights for training and `mafine serve` (a hub id, a "
        "folder, a GGUF file or pkg:<package>/<file>.gguf); default: provider.model",
    )
    path_map: dict[str, str] = mutable_field(
        {},
        description="client path prefix -> the same folder as the servers see it (shared "
        "storage mounted elsewhere); adapters are loaded from the mapped path",
    )
    train_parallel: int = mutable_field(
        1,
        ge=1,
        description="training processes at once (one per GPU: set it to the GPU count; on a CPU 1)",
    )
    request_timeout_s: float = mutable_field(600.0, gt=0.0, description="one request's limit")
    connect_timeout_s: float = mutable_field(5.0, gt=0.0)
    # Retries (providers/retry.py), as for every HTTP provider.
    max_attempts: int = mutable_field(6, ge=1)
    retry_initial_s: float = mutable_field(0.5, gt=0.0)
    retry_max_s: float = mutable_field(30.0, gt=0.0)
    rate_limit_wait_s: float = mutable_field(600.0, ge=0.0)
    # What `mafine serve` starts (docs/vllm.md).
    port: int = Field(8000, ge=1, le=65535, description="`mafine serve`'s port")
    max_loras: int | None = Field(
        None, ge=1, description="`mafine serve`'s --max-loras (default: agent models + 1)"
    )
    max_lora_rank: int | None = Field(
        None, ge=1, description="`mafine serve`'s --max-lora-rank (default: provider.local's rank)"
    )
    serve_args: list[str] = Field(
        [], description="extra arguments for `mafine serve` (e.g. --tensor-parallel-size 2)"
    )

    @field_validator("base_url")
    @classmethod
    def _v1(cls, value: str | list[str]) -> str | list[str]:
        urls = [value] if isinstance(value, str) else value
        if not urls:
            raise ValueError("give at least one base URL")
        for url in urls:
            if not url.startswith(("http://", "https://")) or not url.rstrip("/").endswith("/v1"):
                raise ValueError(
                    f"{url!r}: give the server's OpenAI-style URL, http://HOST:PORT/v1"
                )
        return value

    @property
    def urls(self) -> list[str]:
        urls = [self.base_url] if isinstance(self.base_url, str) else self.base_url
        return [url.rstrip("/") for url in urls]
