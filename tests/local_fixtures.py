"""A tiny Llama-style chat model and tokenizer built locally (no hub, no network), for the
local provider's tests and benchmark and for end-to-end runs on `provider.name: local`.

    model_dir = build_tiny_model(tmp_path / "tiny")
    provider = local_provider(model_dir)                # LocalProvider with tiny_settings

Needs the `local` extra (torch, transformers, tokenizers); import it after
`pytest.importorskip("torch")`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mafine.providers.local import LocalSettings

# A ChatML-style template (the shape Qwen uses), without a default system prompt.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIAL_TOKENS = ["<|pad|>", "<|im_start|>", "<|im_end|>"]

_WORDS = (
    "what is the sum of and minus plus times total answer final boxed so we add subtract "
    "first then result equals reasoning step agent other agents said think again correct "
    "wrong update my apple banana cherry yes no"
)


def _corpus() -> list[str]:
    from mafine import prompts

    lines = [_WORDS]
    for template in (prompts.QUESTION, prompts.DEBATE_WITH_RESPONSES, prompts.DEBATE_WITH_SUMMARY):
        lines += [prompts.render(template, question="", responses="", summary="")] * 20
    lines += [prompts.render(prompts.SUMMARIZE, question="", responses="")] * 20
    for a in range(12):
        for b in range(0, 30, 7):
            lines.append(f"What is {a} + {b}? The answer is \\boxed{{{a + b}}}.")
            lines.append(f"What is {a} - {b}? First {a}, then minus {b}: {a - b}.")
    lines += ["apple apple apple", "banana banana banana", "cherry cherry"]
    return lines


def build_tokenizer():
    """A byte-level BPE tokenizer (a few hundred tokens) with a chat template; any text
    round-trips through it."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=600,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    core.train_from_iterator(_corpus(), trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core, eos_token="<|im_end|>", pad_token="<|pad|>"
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def build_tiny_model(
    directory: Path,
    *,
    seed: int = 0,
    hidden_size: int = 64,
    layers: int = 2,
    heads: int = 4,
    answer_steps: int = 0,
) -> Path:
    """Save a tiny Llama and its tokenizer in `directory` (created); return it, ready to be
    `provider.model`. Deterministic for a given seed.

    With `answer_steps` > 0 the model is first trained (all weights, that many steps, about
    a second per 100 on a CPU) to reply to mafine's prompts with a short bullet and a
    `\\boxed{...}` sum, so debates on it produce answers, votes and fine-tuning data;
    otherwise its weights are random and its replies are noise.
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer()
    tokenizer.save_pretrained(directory)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=max(1, heads // 2),
        max_position_embeddings=1024,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    if answer_steps:
        _teach_answers(model, tokenizer, answer_steps, seed)
    model.save_pretrained(directory)
    return directory


def _answer_chat(rng) -> list[dict[str, str]]:
    """A question in mafine's prompt shapes and an answer in the expected format."""
    from mafine import prompts

    a, b = rng.randint(-20, 40), rng.randint(-20, 40)
    op = rng.choice(["+", "-"])
    value = a + b if op == "+" else a - b
    question = prompts.render(prompts.QUESTION, question=f"What is {a} {op} {b}?")
    reply = f"- {a} {op} {b}\n\\boxed{{{value}}}"
    chat = [{"role": "user", "content": question}, {"role": "assistant", "content": reply}]
    if rng.random() < 0.5:
        other = f"- {a} {op} {b}\n\\boxed{{{value + rng.choice([-1, 0, 1])}}}"
        turn = prompts.render(prompts.DEBATE_WITH_RESPONSES, responses=other)
        chat += [{"role": "user", "content": turn}, {"role": "assistant", "content": reply}]
    return chat


def _teach_answers(model, tokenizer, steps: int, seed: int) -> None:
    import random

    import torch

    rng = random.Random(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    with one_torch_thread():
        _answer_steps(model, tokenizer, optimizer, rng, steps)
    model.eval()


@contextlib.contextmanager
def one_torch_thread() -> Iterator[None]:
    """Tiny models gain nothing from more CPU threads, and on a busy 2-core machine (CI
    running several suites) two torch threads can be ten times slower than one."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _answer_steps(model, tokenizer, optimizer, rng, steps: int) -> None:
    for _ in range(steps):
        texts = [tokenizer.apply_chat_template(_answer_chat(rng), tokenize=False) for _ in range(8)]
        batch = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
        # Learn the replies, not the prompts: mask everything up to each assistant header.
        header = tokenizer.encode("<|im_start|>assistant", add_special_tokens=False)[0]
        seen = (batch["input_ids"] == header).cumsum(dim=1)
        labels = labels.masked_fill(seen == 0, -100)
        loss = model(**batch, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()


def tiny_settings(**overrides: Any) -> LocalSettings:
    """Settings that make the tiny model learn in a few CPU steps."""
    values: dict[str, Any] = {
        "device": "cpu",
        "dtype": "float32",
        "batch_size": 16,
        "batch_window_ms": 1.0,
        "lora_rank": 8,
        "lora_alpha": 16.0,
        "lora_dropout": 0.0,
        "learning_rate": 1e-2,
        "warmup_ratio": 0.0,
        "per_device_batch_size": 4,
        "gradient_accumulation_steps": 1,
        "max_seq_length": 256,
        "log_every": 5,
    }
    values.update(overrides)
    return LocalSettings(**values)


def local_provider(
    model: Path | str,
    *,
    max_concurrency: int = 16,
    run_dir: Path | None = None,
    console: Any = None,
    **settings: Any,
):
    """A LocalProvider on `model` with `tiny_settings` (plus overrides)."""
    from mafine.providers.local import LocalProvider

    return LocalProvider(
        str(model),
        tiny_settings(**settings),
        max_concurrency=max_concurrency,
        run_dir=run_dir,
        console=console,
    )
