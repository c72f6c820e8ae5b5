"""The vllm provider: OpenAI-compatible vLLM servers, a LoRA adapter per agent model loaded
at runtime (docs/vllm.md). Importing this package imports neither openai nor torch."""

from mafine.providers.vllm.settings import VllmSettings

__all__ = ["VllmSettings"]
