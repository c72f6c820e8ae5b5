"""LoRA supervised fine-tuning of one agent model on its own `messages` JSONL.

The loss covers the assistant turns only; the conversation is rendered with the same chat
template the engine uses at inference. Imports torch: only the provider imports it.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from peft import LoraConfig, get_peft_model
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from transformers import get_cosine_schedule_with_warmup

from mafine.atomic import write_text_atomic
from mafine.errors import MafineError
from mafine.providers.base import TuningSpec
from mafine.providers.local.engine import ADAPTER_CONFIG, Engine, quiet_peft_wrap
from mafine.providers.local.provider import ADAPTER_DIR, DONE_FILE
from mafine.seeds import derived_seed

IGNORE = -100
LOG_FILE = "train_log.jsonl"


class BadTrainingData(MafineError):
    """The training file cannot be used (missing, empty, malformed): the job fails."""


@dataclass(frozen=True)
class Features:
    input_ids: list[int]
    labels: list[int]  # IGNORE where the loss does not look (everything but assistant turns)
    truncated: bool


def encode_conversation(engine: Engine, messages: list[dict], max_len: int) -> Features:
    """Token ids of a whole conversation and labels that cover its assistant turns only.

    The rendered conversation is cut into segments at each assistant turn: the text before
    it (up to and including the generation prompt, exactly what inference feeds the model)
    and the assistant's reply (content and end-of-turn marker). Each segment is tokenized on
    its own, so the prompt tokens are those of inference and the label spans are exact.
    """
    full = engine.render(messages, generation_prompt=False)
    cuts: list[tuple[int, int]] = []
    for k, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        before = engine.render(messages[:k], generation_prompt=True) if k else ""
        upto = engine.render(messages[: k + 1], generation_prompt=False)
        previous_end = cuts[-1][1] if cuts else 0
        if not (full.startswith(upto) and upto.startswith(before) and len(before) >= previous_end):
            raise MafineError(
                f"the chat template of {engine.base_name} does not render conversations as "
                "prefixes of each other; assistant-only loss cannot find the assistant turns"
            )
        cuts.append((len(before), len(upto)))
    input_ids: list[int] = []
    labels: list[int] = []
    position = 0
    for start, end in cuts:
        context = engine.encode(full[position:start]) if start > position else []
        reply = engine.encode(full[start:end])
        input_ids += context + reply
        labels += [IGNORE] * len(context) + reply
        position = end
    if position < len(full):
        tail = engine.encode(full[position:])
        input_ids += tail
        labels += [IGNORE] * len(tail)
    truncated = len(input_ids) > max_len
    return Features(input_ids[:max_len], labels[:max_len], truncated)


def read_conversations(path: Path) -> list[list[dict]]:
    """The `messages` of each JSONL row (other fields, e.g. problem_id and kind, ignored)."""
    if not path.is_file():
        raise BadTrainingData(f"training file not found: {path}")
    conversations = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            messages = [{"role": m["role"], "content": m["content"]} for m in row["messages"]]
        except (ValueError, KeyError, TypeError):
            raise BadTrainingData(
                f"{path}:{number}: not a row with messages [{{role, content}}, ...]"
            ) from None
        if not any(m["role"] == "assistant" for m in messages):
            raise BadTrainingData(f"{path}:{number}: no assistant turn to learn from")
        conversations.append(messages)
    if not conversations:
        raise BadTrainingData(f"{path}: no training examples")
    return conversations


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_json_atomic(path: Path, data: Any) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def train_adapter(engine: Engine, spec: TuningSpec, seed: int, console: Console) -> dict:
    """Train one LoRA adapter and publish it: `adapter/` first, then `DONE.json` (atomically).

    Returns the summary written to DONE.json. Deterministic on CPU for a given seed, spec
    and data; on GPUs the backward pass may use non-deterministic kernels.
    """
    settings = engine.settings
    out = Path(spec.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    conversations = read_conversations(Path(spec.training_file))
    features = [encode_conversation(engine, c, settings.max_seq_length) for c in conversations]
    truncated = sum(f.truncated for f in features)
    features = [f for f in features if any(label != IGNORE for label in f.labels)]
    if not features:
        raise BadTrainingData(
            f"{spec.training_file}: no assistant tokens left within "
            f"provider.local.max_seq_length={settings.max_seq_length}"
        )

    train_seed = derived_seed(seed, spec.display_name)
    torch.manual_seed(train_seed)  # LoRA init and dropout
    name = engine.new_adapter_name("t")
    start = spec.start_checkpoint
    _add_slot(engine, start, name)
    try:
        return _fit_and_save(engine, spec, name, features, truncated, train_seed, console)
    except BaseException:
        _drop_slot(engine, name)  # a failed run leaves no half-trained adapter loaded
        raise


def _fit_and_save(
    engine: Engine,
    spec: TuningSpec,
    name: str,
    features: list[Features],
    truncated: int,
    train_seed: int,
    console: Console,
) -> dict:
    settings = engine.settings
    out = Path(spec.output_dir)
    start = spec.start_checkpoint
    peft = engine.peft
    assert peft is not None
    peft.set_adapter(name)
    params = []
    for param_name, param in peft.named_parameters():
        trainable = "lora_" in param_name and f".{name}." in param_name
        param.requires_grad_(trainable)
        if trainable:
            params.append(param)

    batch = settings.per_device_batch_size
    accumulation = settings.gradient_accumulation_steps
    micro_per_epoch = math.ceil(len(features) / batch)
    steps_per_epoch = math.ceil(micro_per_epoch / accumulation)
    total_steps = steps_per_epoch * spec.epochs
    learning_rate = settings.learning_rate * spec.learning_rate_multiplier
    optimizer = torch.optim.AdamW(params, lr=learning_rate, weight_decay=settings.weight_decay)
    scheduler = get_cosine_schedule_with_warmup(
        optimizer, round(settings.warmup_ratio * total_steps), total_steps
    )
    device = engine.device
    amp = device.type == "cuda" and engine.dtype in (torch.float16, torch.bfloat16)
    scaler = torch.amp.GradScaler("cuda", enabled=amp and engine.dtype == torch.float16)
    if settings.gradient_checkpointing:
        engine.checkpointing(True)

    console.print(
        f"tuning {spec.display_name}: {len(features)} examples"
        + (f" ({truncated} cut at {settings.max_seq_length} tokens)" if truncated else "")
        + f", {spec.epochs} epochs, {total_steps} steps, lr {learning_rate:.2e}, "
        f"from {'the base model' if start == engine.base_name else start}",
        highlight=False,
        soft_wrap=True,
    )
    order = torch.Generator().manual_seed(train_seed)
    log_path = out / LOG_FILE
    losses: list[float] = []
    began = time.monotonic()
    peft.train()
    try:
        with (
            log_path.open("w", encoding="utf-8") as log,
            _Reporter(console, spec.display_name, total_steps, settings.log_every) as report,
        ):
            step = 0
            for epoch in range(1, spec.epochs + 1):
                permutation = torch.randperm(len(features), generator=order).tolist()
                micro = [
                    [features[j] for j in permutation[i : i + batch]]
                    for i in range(0, len(permutation), batch)
                ]
                for first in range(0, len(micro), accumulation):
                    group = micro[first : first + accumulation]
                    tokens = sum(
                        sum(label != IGNORE for label in f.labels[1:]) for mb in group for f in mb
                    )
                    step_loss = 0.0
                    for mb in group:
                        ids, mask, labels = _collate(mb, engine.pad_id, device)
                        with torch.autocast(device.type, dtype=engine.dtype, enabled=amp):
                            logits = peft(input_ids=ids, attention_mask=mask).logits
                        # Only the learned positions go to float32: with a 150k-token
                        # vocabulary the full logits would be the largest tensor by far.
                        targets = labels[:, 1:]
                        learned = targets != IGNORE
                        loss_sum = torch.nn.functional.cross_entropy(
                            logits[:, :-1][learned].float(), targets[learned], reduction="sum"
                        )
                        scaler.scale(loss_sum / max(tokens, 1)).backward()
                        step_loss += loss_sum.item()
                        del logits, loss_sum
                    scaler.unscale_(optimizer)
                    torch.nn.utils.clip_grad_norm_(params, settings.max_grad_norm)
                    scaler.step(optimizer)
                    scaler.update()
                    optimizer.zero_grad(set_to_none=True)
                    lr = scheduler.get_last_lr()[0]
                    scheduler.step()
                    step += 1
                    mean = step_loss / max(tokens, 1)
                    losses.append(mean)
                    log.write(
                        json.dumps(
                            {"step": step, "epoch": epoch, "loss": mean, "lr": lr, "tokens": tokens}
                        )
                        + "\n"
                    )
                    log.flush()
                    report.advance(step, epoch, mean, lr)
    except torch.OutOfMemoryError:
        engine.empty_cache()
        raise MafineError(
            f"out of memory on {device.type} while tuning {spec.display_name}: lower "
            "provider.local.per_device_batch_size (raise gradient_accumulation_steps to keep "
            "the effective batch), max_seq_length, or turn on gradient_checkpointing"
        ) from None
    finally:
        peft.eval()
        engine.freeze()
        if settings.gradient_checkpointing:
            engine.checkpointing(False)
        engine.empty_cache()

    adapter_dir = out / ADAPTER_DIR
    _save_adapter(peft, name, out, adapter_dir)
    engine.register(str(adapter_dir), name)  # serve the weights just trained (== saved)
    summary = {
        "adapter": str(adapter_dir),
        "display_name": spec.display_name,
        "base_model": engine.base_name,
        "start_checkpoint": start,
        "training_file": str(spec.training_file),
        "training_file_sha256": file_sha256(Path(spec.training_file)),
        "examples": len(features),
        "truncated": truncated,
        "epochs": spec.epochs,
        "steps": total_steps,
        "learning_rate": learning_rate,
        "first_loss": losses[0],
        "last_loss": losses[-1],
        "seconds": round(time.monotonic() - began, 3),
        "seed": train_seed,
        "device": device.type,
        "dtype": str(engine.dtype).removeprefix("torch."),
    }
    write_json_atomic(out / DONE_FILE, summary)  # written last: the adapter is finished
    console.print(
        f"tuned {spec.display_name}: loss {losses[0]:.4f} -> {losses[-1]:.4f} "
        f"in {summary['seconds']:.1f}s; adapter {adapter_dir}",
        highlight=False,
        soft_wrap=True,
    )
    return summary


def _add_slot(engine: Engine, start: str, name: str) -> None:
    """A new trainable adapter slot: fresh LoRA weights (from the base model) or a copy of a
    previous adapter's weights (continue)."""
    settings = engine.settings
    if start == engine.base_name:
        lora = LoraConfig(
            r=settings.lora_rank,
            lora_alpha=settings.lora_alpha,
            lora_dropout=settings.lora_dropout,
            target_modules=(
                engine.linear_targets
                if settings.target_modules == "all-linear"
                else settings.target_modules
            ),
            bias="none",
            task_type="CAUSAL_LM",
        )
        if engine.peft is None:
            with quiet_peft_wrap():
                engine.model = get_peft_model(engine.base, lora, adapter_name=name)
        else:
            engine.peft.add_adapter(name, lora)
    else:
        if not (Path(start) / ADAPTER_CONFIG).is_file():
            raise MafineError(
                f"cannot continue tuning from {start!r}: neither the base model "
                f"({engine.base_name}) nor a LoRA adapter directory"
            )
        engine.load_adapter(Path(start), name, trainable=True)


def _drop_slot(engine: Engine, name: str) -> None:
    if name not in engine.adapters.values():
        engine.unload(name)


def _collate(batch: list[Features], pad_id: int, device: torch.device):
    """Right-padded input ids, attention mask and labels (IGNORE on padding)."""
    width = max(len(f.input_ids) for f in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    labels = torch.full((len(batch), width), IGNORE, dtype=torch.long)
    for i, f in enumerate(batch):
        n = len(f.input_ids)
        ids[i, :n] = torch.tensor(f.input_ids)
        mask[i, :n] = 1
        labels[i, :n] = torch.tensor(f.labels)
    return ids.to(device), mask.to(device), labels.to(device)


def _save_adapter(peft, name: str, out: Path, adapter_dir: Path) -> None:
    """Save one adapter's weights and config into `adapter_dir`, replacing it whole."""
    staging = out / ".adapter.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    peft.save_pretrained(str(staging), selected_adapters=[name])
    found = next(p.parent for p in sorted(staging.rglob(ADAPTER_CONFIG)))  # peft may nest it
    shutil.rmtree(adapter_dir, ignore_errors=True)
    os.replace(found, adapter_dir)
    shutil.rmtree(staging, ignore_errors=True)


class _Reporter:
    """Training progress: a rich bar on a terminal, a loss line every few steps elsewhere."""

    def __init__(self, console: Console, label: str, total: int, every: int) -> None:
        self.console = console
        self.label = label
        self.total = total
        self.every = every
        self.progress: Progress | None = None

    def __enter__(self) -> _Reporter:
        if self.console.is_terminal:
            self.progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("loss {task.fields[loss]}"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=self.console,
            )
            self.progress.start()
            self.task = self.progress.add_task(self.label, total=self.total, loss="-")
        return self

    def advance(self, step: int, epoch: int, loss: float, lr: float) -> None:
        if self.progress is not None:
            self.progress.update(self.task, completed=step, loss=f"{loss:.4f}")
        elif step % self.every == 0 or step == self.total or step == 1:
            self.console.print(
                f"  {self.label} step {step}/{self.total} epoch {epoch} "
                f"loss {loss:.4f} lr {lr:.2e}",
                highlight=False,
                soft_wrap=True,
            )

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()
