"""LoRA supervised fine-tuning of one agent model on its own `messages` JSONL, with TRL.

TRL's `SFTTrainer` trains the engine's peft model on conversational prompt-completion rows
(see sft_data): the loss covers the final reply only, and TRL renders both parts with the
tokenizer's chat template, the one the engine uses at inference (a test checks the tokens).
Under `torchrun` / `accelerate launch` the same trainer runs data-parallel (see train_job).
Imports torch, trl and datasets: only the provider and train_job import it.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path

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
from transformers import PrinterCallback, TrainerCallback, TrainingArguments

from mafine.atomic import write_text_atomic
from mafine.errors import MafineError
from mafine.providers.base import TuningSpec
from mafine.providers.local.engine import Engine, quiet_peft_wrap
from mafine.providers.local.layout import ADAPTER_DIR, DONE_FILE, LOG_FILE, run_relative
from mafine.providers.local.models import file_sha256
from mafine.providers.local.sft_data import BadTrainingData, prompt_completion, read_conversations

TRAINER_DIR = ".trainer"  # TrainingArguments.output_dir; nothing is saved there


def train_adapter(engine: Engine, spec: TuningSpec, console: Console) -> dict:
    """Train one LoRA adapter and publish it: `adapter/` first, then `DONE.json` (atomically).

    Returns the summary written to DONE.json. The seed (LoRA initialisation, data order,
    dropout) is `spec.seed`, which the finetune stage derives from the run seed and the
    model's role, so the adapter does not depend on where the run directory lives.
    Deterministic on a CPU; on GPUs the backward pass may use non-deterministic kernels.
    In a data-parallel launch every process calls this; the first one publishes.
    """
    out = Path(spec.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = [prompt_completion(c) for c in read_conversations(Path(spec.training_file))]
    torch.manual_seed(spec.seed)  # the LoRA initialisation
    name = engine.new_adapter_name("t")
    _add_slot(engine, spec.start_checkpoint, name)
    try:
        return _fit_and_save(engine, spec, name, rows, console)
    except BaseException:
        _drop_slot(engine, name)  # a failed run leaves no half-trained adapter loaded
        raise


def make_trainer(engine: Engine, model, spec: TuningSpec, rows: list[dict], callbacks=()):
    """TRL's SFTTrainer on `model` for prompt-completion `rows`; its `train_dataset` holds
    the tokenized rows (input_ids, labels -100 outside the completion)."""
    from datasets import Dataset
    from trl import SFTTrainer

    learning_rate = engine.settings.learning_rate * spec.learning_rate_multiplier
    with _quiet_datasets():
        trainer = SFTTrainer(
            model=model,
            args=_arguments(engine, spec, learning_rate, Path(spec.output_dir)),
            train_dataset=Dataset.from_list(rows),
            processing_class=engine.tokenizer,
            callbacks=list(callbacks),
        )
    trainer.remove_callback(PrinterCallback)  # it prints every log dict; _StepLog reports
    return trainer


def _fit_and_save(
    engine: Engine, spec: TuningSpec, name: str, rows: list[dict], console: Console
) -> dict:
    settings = engine.settings
    out = Path(spec.output_dir)
    peft = engine.peft
    assert peft is not None
    peft.set_adapter(name)
    for param_name, param in peft.named_parameters():
        param.requires_grad_("lora_" in param_name and f".{name}." in param_name)
    learning_rate = settings.learning_rate * spec.learning_rate_multiplier
    log = _StepLog(out / LOG_FILE, console, spec.display_name, settings.log_every)
    trainer = make_trainer(engine, peft, spec, rows, [log])
    prepared = trainer.train_dataset
    kept = len(prepared)
    cut = sum(len(ids) >= settings.max_seq_length for ids in prepared["input_ids"])
    if kept == 0:
        raise BadTrainingData(
            f"{spec.training_file}: no reply tokens left within "
            f"provider.local.max_seq_length={settings.max_seq_length}"
        )
    start = spec.start_checkpoint
    console.print(
        f"tuning {spec.display_name}: {kept} examples"
        + (f" ({len(rows) - kept} dropped, no reply left)" if kept < len(rows) else "")
        + (f" ({cut} cut at {settings.max_seq_length} tokens)" if cut else "")
        + f", {spec.epochs} epochs, lr {learning_rate:.2e}, "
        + f"{trainer.args.world_size} process(es), "
        + f"from {'the base model' if start == engine.base_name else start}",
        highlight=False,
        soft_wrap=True,
    )
    began = time.monotonic()
    try:
        result = trainer.train()
    except torch.OutOfMemoryError:
        engine.empty_cache()
        raise MafineError(
            f"out of memory on {engine.device.type} while tuning {spec.display_name}: lower "
            "provider.local.per_device_batch_size (raise gradient_accumulation_steps to keep "
            "the effective batch), max_seq_length, or turn on gradient_checkpointing"
        ) from None
    finally:
        log.close()
        peft.eval()
        engine.freeze()
        if settings.gradient_checkpointing:
            engine.checkpointing(False)
    seconds = time.monotonic() - began
    world_size, first_process = trainer.args.world_size, trainer.is_world_process_zero()
    accelerator = trainer.accelerator
    del trainer
    gc.collect()
    engine.empty_cache()
    shutil.rmtree(out / TRAINER_DIR, ignore_errors=True)
    summary = {
        "adapter": ADAPTER_DIR,
        "display_name": spec.display_name,
        "base_model": engine.base_name,
        "start_checkpoint": start,
        "training_file_sha256": file_sha256(Path(spec.training_file)),
        "examples": kept,
        "truncated": cut,
        "epochs": spec.epochs,
        "steps": result.global_step,
        "learning_rate": learning_rate,
        "first_loss": log.losses[0] if log.losses else None,
        "last_loss": log.losses[-1] if log.losses else None,
        "seconds": round(seconds, 3),
        "examples_per_second": round(kept * spec.epochs / seconds, 3),
        "processes": world_size,
        "seed": spec.seed,
        "device": engine.device.type,
        "dtype": str(engine.dtype).removeprefix("torch."),
    }
    if first_process:
        adapter_dir = out / ADAPTER_DIR
        _save_adapter(peft, name, out, adapter_dir)
        # Serve the weights just trained (== saved) under the name poll_tuning returns.
        engine.register(run_relative(adapter_dir, engine.run_dir), name)
        write_text_atomic(
            out / DONE_FILE, json.dumps(summary, indent=2, sort_keys=True) + "\n"
        )  # written last: the adapter is finished
        console.print(
            f"tuned {spec.display_name}: loss {summary['first_loss']:.4f} -> "
            f"{summary['last_loss']:.4f} in {seconds:.1f}s "
            f"({summary['examples_per_second']:.2f} examples/s); adapter {adapter_dir}",
            highlight=False,
            soft_wrap=True,
        )
    accelerator.wait_for_everyone()
    return summary


def _arguments(engine: Engine, spec: TuningSpec, learning_rate: float, out: Path):
    from trl import SFTConfig

    settings = engine.settings
    cuda = engine.device.type == "cuda"
    # transformers 5 reads a float warmup_steps < 1 as a ratio; 4.x had warmup_ratio.
    names = {f.name for f in fields(TrainingArguments)}
    warmup = (
        {"warmup_ratio": settings.warmup_ratio}
        if "warmup_ratio" in names
        else {"warmup_steps": settings.warmup_ratio}
    )
    # transformers 5.2x renamed gradient_checkpointing to activation_checkpointing.
    checkpointing = "activation" if "activation_checkpointing" in names else "gradient"
    checkpoint_args = {
        f"{checkpointing}_checkpointing": settings.gradient_checkpointing,
        f"{checkpointing}_checkpointing_kwargs": {"use_reentrant": False},
    }
    return SFTConfig(
        output_dir=str(out / TRAINER_DIR),
        num_train_epochs=spec.epochs,
        per_device_train_batch_size=settings.per_device_batch_size,
        gradient_accumulation_steps=settings.gradient_accumulation_steps,
        learning_rate=learning_rate,
        lr_scheduler_type="cosine",
        weight_decay=settings.weight_decay,
        max_grad_norm=settings.max_grad_norm,
        seed=spec.seed,
        data_seed=spec.seed,
        max_length=settings.max_seq_length,
        completion_only_loss=True,
        packing=False,
        bf16=cuda and engine.dtype == torch.bfloat16,
        fp16=cuda and engine.dtype == torch.float16,
        use_cpu=engine.device.type == "cpu",
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        dataloader_num_workers=0,
        ddp_find_unused_parameters=False,
        **warmup,
        **checkpoint_args,
    )


@contextlib.contextmanager
def _quiet_datasets() -> Iterator[None]:
    """TRL tokenizes with datasets.map, whose progress bars would interleave with ours."""
    from datasets.utils import logging as datasets_logging

    was_on = datasets_logging.is_progress_bar_enabled()
    datasets_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_on:
            datasets_logging.enable_progress_bar()


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
        return
    path = engine.adapter_path(start)
    if path is None:
        raise MafineError(
            f"cannot continue tuning from {start!r}: neither the base model "
            f"({engine.base_name}) nor a LoRA adapter directory"
        )
    engine.load_adapter(path, name, trainable=True)


def _drop_slot(engine: Engine, name: str) -> None:
    if name not in engine.adapters.values():
        engine.unload(name)


def _save_adapter(peft, name: str, out: Path, adapter_dir: Path) -> None:
    """Save one adapter's weights and config into `adapter_dir`, replacing it whole."""
    staging = out / ".adapter.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    peft.save_pretrained(str(staging), selected_adapters=[name])
    found = next(p.parent for p in sorted(staging.rglob("adapter_config.json")))  # may nest
    shutil.rmtree(adapter_dir, ignore_errors=True)
    os.replace(found, adapter_dir)
    shutil.rmtree(staging, ignore_errors=True)


class _StepLog(TrainerCallback):
    """One JSON line per optimizer step into train_log.jsonl, and the progress: a rich bar on
    a terminal, a loss line every few steps elsewhere. Only the first process writes."""

    def __init__(self, path: Path, console: Console, label: str, every: int) -> None:
        self.path = path
        self.console = console
        self.label = label
        self.every = every
        self.losses: list[float] = []
        self.handle = None
        self.progress: Progress | None = None
        self.total = 0

    def on_train_begin(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:
            return
        self.total = state.max_steps
        self.handle = self.path.open("w", encoding="utf-8")
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

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.handle is None or not logs or "loss" not in logs:
            return
        step, loss = state.global_step, float(logs["loss"])
        self.losses.append(loss)
        row = {
            "step": step,
            "epoch": logs.get("epoch"),
            "loss": loss,
            "lr": logs.get("learning_rate"),
            "tokens": logs.get("num_tokens"),
        }
        self.handle.write(json.dumps(row) + "\n")
        self.handle.flush()
        if self.progress is not None:
            self.progress.update(self.task, completed=step, loss=f"{loss:.4f}")
        elif step % self.every == 0 or step == self.total or step == 1:
            self.console.print(
                f"  {self.label} step {step}/{self.total} loss {loss:.4f} lr {row['lr'] or 0:.2e}",
                highlight=False,
                soft_wrap=True,
            )

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None
        if self.handle is not None:
            self.handle.close()
            self.handle = None
