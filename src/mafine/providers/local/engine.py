"""One base model in memory, its LoRA adapters, batched generation and scoring.

This module imports torch, transformers and peft at import time: only `LocalProvider` imports
it, after checking that the `local` extra is installed. Every method here runs on the
provider's single worker thread, so the model is never used by two threads at once.
"""

from __future__ import annotations

import contextlib
import inspect
import warnings
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch
from peft import PeftModel
from rich.console import Console
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    GenerationConfig,
    LogitsProcessor,
    LogitsProcessorList,
    StoppingCriteria,
    StoppingCriteriaList,
)

from mafine.artifacts import Message
from mafine.errors import MafineError
from mafine.providers.local.layout import ADAPTER_CONFIG, in_run
from mafine.providers.local.models import dtype_kwarg, first_line, model_directory
from mafine.providers.local.rows import GenResult, GenRow, ScoreRow
from mafine.providers.local.settings import LocalSettings


def resolve_device(name: str) -> torch.device:
    """`auto`: cuda if torch sees one, else mps, else cpu; an explicit choice must exist."""
    mps = getattr(torch.backends, "mps", None)
    has_mps = bool(mps is not None and mps.is_available())
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if has_mps else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise MafineError("provider.local.device is cuda, but torch sees no CUDA device")
    if name == "mps" and not has_mps:
        raise MafineError("provider.local.device is mps, but torch sees no MPS device")
    return torch.device(name)


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """`auto`: bfloat16 on GPUs with native bf16 (compute capability 8+), float16 on older
    GPUs such as the T4, float32 on cpu and mps."""
    if name != "auto":
        return getattr(torch, name)
    if device.type == "cuda":
        # torch.cuda.is_bf16_supported() says True on a T4 because it counts emulation.
        major, _ = torch.cuda.get_device_capability(device)
        return torch.bfloat16 if major >= 8 else torch.float16
    return torch.float32


class _RowSampler(LogitsProcessor):
    """Chooses each row's next token from that row's own random stream.

    Row i's t-th token uses the t-th uniform of a stream seeded from row i's request only,
    so its draws never depend on its batch-mates, their number or their order. The chosen
    token is returned as the only finite logit, so generate's greedy step picks it.
    """

    def __init__(
        self,
        prompt_len: int,
        uniforms: torch.Tensor,
        temperature: torch.Tensor,
        top_p: torch.Tensor,
    ) -> None:
        self.prompt_len = prompt_len
        self.uniforms = uniforms  # (rows, max_new_tokens); float64 except on mps
        self.temperature = temperature  # (rows,), 0 means greedy
        self.top_p = top_p  # (rows,)
        self.all_greedy = bool((temperature == 0).all())

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        scores = scores.float()
        chosen = scores.argmax(dim=-1)
        if not self.all_greedy:
            step = input_ids.shape[1] - self.prompt_len
            greedy = self.temperature == 0
            temperature = torch.where(greedy, torch.ones_like(self.temperature), self.temperature)
            probs = torch.softmax(scores / temperature[:, None], dim=-1).to(self.uniforms.dtype)
            sorted_probs, order = probs.sort(dim=-1, descending=True, stable=True)
            mass_before = sorted_probs.cumsum(dim=-1) - sorted_probs
            sorted_probs = sorted_probs * (mass_before < self.top_p[:, None])  # nucleus
            cdf = sorted_probs.cumsum(dim=-1)
            target = self.uniforms[:, step : step + 1] * cdf[:, -1:]
            index = torch.searchsorted(cdf, target, right=True).clamp(max=cdf.shape[-1] - 1)
            sampled = order.gather(1, index).squeeze(1)
            chosen = torch.where(greedy, chosen, sampled)
        forced = torch.full_like(scores, float("-inf"))
        forced.scatter_(1, chosen[:, None], 0.0)
        return forced


class _RowLimits(StoppingCriteria):
    """Stops each row at its own max_output_tokens (the batch runs to the longest limit)."""

    def __init__(self, prompt_len: int, limits: torch.Tensor) -> None:
        self.prompt_len = prompt_len
        self.limits = limits

    def __call__(self, input_ids: torch.LongTensor, scores, **kwargs) -> torch.BoolTensor:
        return (input_ids.shape[1] - self.prompt_len) >= self.limits


class Engine:
    """The base model, its tokenizer and the LoRA adapters loaded on it."""

    def __init__(
        self,
        model_id: str,
        settings: LocalSettings,
        console: Console,
        run_dir: Path | None = None,
    ) -> None:
        self.base_name = model_id
        self.settings = settings
        self.run_dir = run_dir
        self.device = resolve_device(settings.device)
        self.dtype = resolve_dtype(settings.dtype, self.device)
        remote = settings.trust_remote_code
        cache = Path(settings.model_cache_dir) if settings.model_cache_dir else None
        source = model_directory(model_id, cache, console)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=remote)
            model = AutoModelForCausalLM.from_pretrained(
                source, trust_remote_code=remote, **dtype_kwarg(self.dtype)
            )
        except (OSError, ValueError) as exc:
            raise MafineError(f"cannot load local model {model_id!r}: {first_line(exc)}") from None
        if not getattr(self.tokenizer, "chat_template", None):
            raise MafineError(
                f"{model_id}: the tokenizer has no chat template; use an instruct or chat model"
            )
        model.to(self.device)
        model.eval()
        self.eos_ids = _eos_ids(model, self.tokenizer)
        if not self.eos_ids:
            raise MafineError(f"{model_id}: neither the model nor the tokenizer names an EOS token")
        pad = self.tokenizer.pad_token_id
        self.pad_id = pad if pad is not None else self.eos_ids[0]
        # The checkpoint's own sampling defaults (Qwen's repetition_penalty, top_k, ...) would
        # fill every field we leave unset: replace them, so only the config's sampling applies.
        model.generation_config = GenerationConfig(
            eos_token_id=self.eos_ids,
            pad_token_id=self.pad_id,
            bos_token_id=getattr(model.generation_config, "bos_token_id", None),
        )
        self.linear_targets = _linear_module_names(model)
        self.base = model  # the transformers model, wrapped in place by peft later
        self.model: torch.nn.Module = model  # the model to call: base, or the PeftModel on it
        # serving name (adapter directory) -> peft adapter name, least recently used first
        self.adapters: OrderedDict[str, str] = OrderedDict()
        self._counter = 0
        forward = inspect.signature(model.forward).parameters
        self._keep_arg = next(
            (a for a in ("logits_to_keep", "num_logits_to_keep") if a in forward), None
        )

    # ----------------------------------------------------------------- adapters

    @property
    def peft(self) -> PeftModel | None:
        return self.model if isinstance(self.model, PeftModel) else None

    def new_adapter_name(self, prefix: str) -> str:
        self._counter += 1
        return f"{prefix}{self._counter}"

    def resolve(self, name: str) -> str | None:
        """The peft adapter name serving `name` (None: the base model); loads it if needed."""
        if name == self.base_name:
            return None
        if name in self.adapters:
            self.adapters.move_to_end(name)
            return self.adapters[name]
        path = self.adapter_path(name)
        if path is None:
            raise MafineError(
                f"unknown local model {name!r}: neither the base model ({self.base_name}) "
                f"nor a LoRA adapter directory (with {ADAPTER_CONFIG})"
            )
        adapter = self.load_adapter(path, self.new_adapter_name("a"), trainable=False)
        self.register(name, adapter)
        return adapter

    def adapter_path(self, name: str) -> Path | None:
        """The adapter directory `name` names (relative names are inside the run directory)."""
        path = in_run(name, self.run_dir)
        return path if (path / ADAPTER_CONFIG).is_file() else None

    def register(self, name: str, adapter: str) -> None:
        """Serve `name` with the loaded peft adapter `adapter`; unload the least recently
        used adapters beyond settings.max_adapters (they reload from disk when asked for)."""
        replaced = self.adapters.get(name)
        self.adapters[name] = adapter
        self.adapters.move_to_end(name)
        if replaced is not None and replaced != adapter:
            self.unload(replaced)  # the same directory, retrained
        while len(self.adapters) > self.settings.max_adapters:
            _, old = self.adapters.popitem(last=False)
            if old != adapter:
                self.unload(old)

    def unload(self, adapter: str) -> None:
        """Free one adapter's weights (the base and the other adapters stay)."""
        peft = self.peft
        if peft is None or adapter not in peft.peft_config:
            return
        with warnings.catch_warnings():
            # "Adapter X was active which is now deleted": every call sets its adapter anyway.
            warnings.filterwarnings(
                "ignore", message=".*which is now deleted", category=UserWarning
            )
            peft.delete_adapter(adapter)

    def load_adapter(self, path: Path, adapter: str, *, trainable: bool) -> str:
        """Load saved LoRA weights into a new adapter slot; the base is never reloaded."""
        try:
            if self.peft is None:
                with quiet_peft_wrap():
                    self.model = PeftModel.from_pretrained(
                        self.base, str(path), adapter_name=adapter, is_trainable=trainable
                    )
            else:
                with quiet_peft_wrap():
                    self.peft.load_adapter(str(path), adapter_name=adapter, is_trainable=trainable)
        except (OSError, ValueError, KeyError) as exc:
            raise MafineError(
                f"cannot load LoRA adapter {str(path)!r}: {first_line(exc)}"
            ) from None
        self.model.eval()
        self.freeze()
        return adapter

    def freeze(self) -> None:
        for param in self.model.parameters():
            param.requires_grad_(False)

    @contextlib.contextmanager
    def using(self, adapter: str | None) -> Iterator[None]:
        """Run with one adapter active, or (None) with every adapter disabled: the base."""
        peft = self.peft
        if adapter is None:
            if peft is None:
                yield
            else:
                with peft.disable_adapter():
                    yield
            return
        assert peft is not None
        peft.set_adapter(adapter)
        yield

    # ----------------------------------------------------------------- text

    def render(
        self, messages: Sequence[Message] | Sequence[dict], *, generation_prompt: bool
    ) -> str:
        """The chat template applied to a conversation: the same for training and inference."""
        conversation = [
            m if isinstance(m, dict) else {"role": m.role, "content": m.content} for m in messages
        ]
        return self.tokenizer.apply_chat_template(
            conversation, tokenize=False, add_generation_prompt=generation_prompt
        )

    def encode(self, text: str) -> list[int]:
        """Token ids of an already rendered text (the template carries any BOS itself)."""
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    # ----------------------------------------------------------------- generation

    def generate(self, model_name: str, rows: Sequence[GenRow]) -> list[GenResult]:
        """One batched generate call for rows that share a model (left padding)."""
        adapter = self.resolve(model_name)
        prompts = [self.encode(self.render(r.messages, generation_prompt=True)) for r in rows]
        width = max(len(p) for p in prompts)
        input_ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        attention = torch.zeros((len(rows), width), dtype=torch.long)
        for i, prompt in enumerate(prompts):
            input_ids[i, width - len(prompt) :] = torch.tensor(prompt, dtype=torch.long)
            attention[i, width - len(prompt) :] = 1
        limits = [r.max_output_tokens for r in rows]
        longest = max(limits)
        uniforms = torch.stack(
            [
                torch.rand(
                    longest, generator=torch.Generator().manual_seed(r.seed), dtype=torch.float64
                )
                for r in rows
            ]
        )
        device = self.device
        real = torch.float32 if device.type == "mps" else torch.float64  # mps has no float64
        sampler = _RowSampler(
            width,
            uniforms.to(device=device, dtype=real),
            torch.tensor([r.temperature for r in rows], dtype=real, device=device),
            torch.tensor([r.top_p for r in rows], dtype=real, device=device),
        )
        stopper = _RowLimits(width, torch.tensor(limits, device=device))
        config = GenerationConfig(
            do_sample=False,
            num_beams=1,
            max_new_tokens=longest,
            eos_token_id=self.eos_ids,
            pad_token_id=self.pad_id,
        )
        with (
            self._oom_hint("generation", "provider.local.batch_size"),
            torch.inference_mode(),
            self.using(adapter),
        ):
            out = self.model.generate(
                input_ids=input_ids.to(device),
                attention_mask=attention.to(device),
                generation_config=config,
                logits_processor=LogitsProcessorList([sampler]),
                stopping_criteria=StoppingCriteriaList([stopper]),
            )
        new_tokens = out[:, width:].tolist()
        eos = set(self.eos_ids)
        results = []
        for prompt, limit, tokens in zip(prompts, limits, new_tokens, strict=True):
            tokens = tokens[:limit]
            stop = next((j for j, t in enumerate(tokens) if t in eos), None)
            if stop is None:
                kept, used, reason = tokens, len(tokens), "length"
            else:
                kept, used, reason = tokens[:stop], stop + 1, "stop"
            text = self.tokenizer.decode(kept, skip_special_tokens=True)
            results.append(GenResult(text, reason, len(prompt), used))
        return results

    # ----------------------------------------------------------------- scoring

    def score(self, model_name: str, rows: Sequence[ScoreRow]) -> list[list[float]]:
        """Log-probabilities of each response's tokens as the assistant reply (right padding).

        The prompt is the chat template with the generation prompt, tokenized as at inference;
        the response is tokenized on its own and follows it. End-of-turn tokens are not scored.
        """
        adapter = self.resolve(model_name)
        pairs = []
        for r in rows:
            prompt = self.encode(self.render(r.messages, generation_prompt=True))
            response = self.encode(r.response) if r.response else []
            pairs.append((prompt, response))
        width = max(len(p) + len(q) for p, q in pairs)
        input_ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        attention = torch.zeros((len(rows), width), dtype=torch.long)
        for i, (p, q) in enumerate(pairs):
            input_ids[i, : len(p) + len(q)] = torch.tensor(p + q, dtype=torch.long)
            attention[i, : len(p) + len(q)] = 1
        # Logits are needed only from the earliest response start on.
        start = min(len(p) for p, _ in pairs) - 1
        kwargs = {self._keep_arg: width - start} if self._keep_arg else {}
        with (
            self._oom_hint("scoring", "provider.local.score_batch_size"),
            torch.inference_mode(),
            self.using(adapter),
        ):
            logits = self.model(
                input_ids=input_ids.to(self.device),
                attention_mask=attention.to(self.device),
                **kwargs,
            ).logits
        offset = width - logits.shape[1]  # positions dropped by logits_to_keep
        results = []
        for i, (p, q) in enumerate(pairs):
            if not q:
                results.append([])
                continue
            rows_logits = logits[i, len(p) - 1 - offset : len(p) + len(q) - 1 - offset].float()
            logprobs = torch.log_softmax(rows_logits, dim=-1)
            target = torch.tensor(q, device=logprobs.device)[:, None]
            results.append(logprobs.gather(1, target).squeeze(1).tolist())
        return results

    # ----------------------------------------------------------------- misc

    @contextlib.contextmanager
    def _oom_hint(self, what: str, setting: str) -> Iterator[None]:
        try:
            yield
        except torch.OutOfMemoryError:
            self.empty_cache()
            raise MafineError(
                f"out of memory on {self.device.type} during local {what}: lower {setting}, "
                "or use a smaller model or dtype"
            ) from None

    def checkpointing(self, on: bool) -> None:
        """Activation (gradient) checkpointing of the base model on or off."""
        base = self.base
        kwargs = {"use_reentrant": False}
        if on and hasattr(base, "activation_checkpointing_enable"):  # transformers >= 5
            base.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
        elif on:
            base.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
        else:
            disable = getattr(base, "activation_checkpointing_disable", None)
            (disable or base.gradient_checkpointing_disable)()

    def empty_cache(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        elif self.device.type == "mps":
            torch.mps.empty_cache()

    def close(self) -> None:
        self.adapters.clear()
        self.model = None  # type: ignore[assignment]
        self.base = None
        self.empty_cache()


@contextlib.contextmanager
def quiet_peft_wrap() -> Iterator[None]:
    """peft's PeftModel.__init__ reads an attribute that transformers 5 deprecates; the
    warning says nothing a mafine user can act on."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=".*is_gradient_checkpointing", category=FutureWarning
        )
        yield


def _linear_module_names(model) -> list[str]:
    """What `all-linear` means, resolved once on the unwrapped base: the names of its linear
    layers except the output head. (peft's own resolution misfires in some versions when a
    second adapter is added to a model it already wrapped.)"""
    head = model.get_output_embeddings()
    names = {
        name.rsplit(".", 1)[-1]
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear) and module is not head
    }
    return sorted(names)


def _eos_ids(model, tokenizer) -> list[int]:
    """End-of-turn ids: the model's generation config (chat models list several) and the
    tokenizer's EOS."""
    ids: list[int] = []
    configured = getattr(model.generation_config, "eos_token_id", None)
    if isinstance(configured, int):
        ids.append(configured)
    elif configured:
        ids.extend(int(i) for i in configured)
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(tokenizer.eos_token_id)
    return ids
