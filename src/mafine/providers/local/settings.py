"""Settings of the local open-model provider (`provider.local` in the config).

Plain pydantic, no torch: the config validates on machines without the `local` extra.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from mafine.schema import Strict, mutable_field


class LocalSettings(Strict):
    """How the local provider loads, batches, samples from and tunes open models."""

    # Where the model runs.
    device: Literal["auto", "cuda", "mps", "cpu"] = Field(
        "auto", description="auto: cuda if available, else mps, else cpu"
    )
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = Field(
        "auto",
        description="auto: bfloat16 on a GPU that has it, float16 on one that has not "
        "(e.g. a T4), float32 on cpu and mps",
    )
    trust_remote_code: bool = Field(False, description="let transformers run a model's own code")
    model_cache_dir: str | None = Field(
        None,
        description="where dequantised GGUF models are cached, one per file content "
        "(default: $XDG_CACHE_HOME/mafine/models, else ~/.cache/mafine/models)",
    )

    # Generation.
    batch_size: int = Field(16, ge=1, description="rows per batched generate call")
    batch_window_ms: float = mutable_field(
        5.0, ge=0.0, description="how long the batcher waits for requests arriving together"
    )
    score_batch_size: int = mutable_field(
        4, ge=1, description="rows per log-likelihood forward pass"
    )
    max_adapters: int = mutable_field(
        8, ge=1, description="LoRA adapters kept loaded; the least recently used is unloaded"
    )

    # LoRA.
    lora_rank: int = Field(16, ge=1)
    lora_alpha: float = Field(32.0, gt=0.0)
    lora_dropout: float = Field(0.05, ge=0.0, lt=1.0)
    target_modules: list[str] | Literal["all-linear"] = Field(
        "all-linear", description="module names to adapt, or all-linear (every linear but lm_head)"
    )

    # Supervised fine-tuning (epochs come from finetune.epochs).
    learning_rate: float = Field(
        1e-4, gt=0.0, description="peak learning rate, times finetune.learning_rate_multiplier"
    )
    warmup_ratio: float = Field(0.03, ge=0.0, lt=1.0, description="linear warmup, then cosine")
    weight_decay: float = Field(0.0, ge=0.0)
    max_grad_norm: float = Field(1.0, gt=0.0)
    per_device_batch_size: int = Field(2, ge=1, description="examples per forward/backward pass")
    gradient_accumulation_steps: int = Field(2, ge=1, description="passes per optimizer step")
    max_seq_length: int = Field(
        2048, ge=16, description="longer training examples are cut at the end (counted, logged)"
    )
    gradient_checkpointing: bool = Field(False, description="less memory, about 30% slower")
    train_processes: int = Field(
        1,
        ge=1,
        description="data-parallel training processes (torchrun; one per GPU, or CPU "
        "processes); 1 trains in the provider's own process on the loaded model",
    )
    log_every: int = mutable_field(
        10, ge=1, description="optimizer steps between loss lines off a TTY"
    )
