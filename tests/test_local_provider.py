"""The local provider on a tiny Llama built locally: CPU, no hub, no network."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("peft")

from safetensors.torch import load_file  # noqa: E402

from mafine.artifacts import Message  # noqa: E402
from mafine.errors import MafineError  # noqa: E402
from mafine.providers.base import GenerationRequest, Sampling, TuningSpec  # noqa: E402
from mafine.providers.local import EXTRA_MESSAGE, LocalProvider, LocalSettings  # noqa: E402
from tests.local_fixtures import (  # noqa: E402
    build_tiny_model,
    local_provider,
    one_torch_thread,
)

PROMPT = "What is 2 + 5?"
SRC = str(Path(__file__).resolve().parents[1] / "src")


# ------------------------------------------------------------------ helpers


def user(text: str) -> tuple[Message, ...]:
    return (Message(role="user", content=text),)


def request(
    model: str,
    text: str = PROMPT,
    *,
    seed: int = 0,
    sample_index: int = 0,
    temperature: float = 1.0,
    top_p: float = 0.9,
    max_tokens: int = 10,
) -> GenerationRequest:
    return GenerationRequest(
        model=model,
        messages=user(text),
        sampling=Sampling(temperature, top_p, max_tokens),
        sample_index=sample_index,
        seed=seed,
    )


def generate_all(provider: LocalProvider, requests: list[GenerationRequest]) -> list[str]:
    """All requests at once, as concurrent tasks (the pipeline's pattern)."""

    async def main():
        return await asyncio.gather(*(provider.generate(r) for r in requests))

    return [c.text for c in asyncio.run(main())]


def generate_one_by_one(provider: LocalProvider, requests: list[GenerationRequest]) -> list[str]:
    return [asyncio.run(provider.generate(r)).text for r in requests]


def write_sft(path: Path, answer: str, n: int = 8) -> Path:
    with path.open("w") as f:
        for i in range(n):
            messages = [
                {"role": "user", "content": f"What is {i} + {i + 3}?"},
                {"role": "assistant", "content": answer},
            ]
            row = {"messages": messages, "problem_id": f"p{i}", "kind": "generation"}
            f.write(json.dumps(row) + "\n")
    return path


def spec(root: Path, name: str, training_file: Path, start: str, epochs: int = 6) -> TuningSpec:
    return TuningSpec(
        display_name=name,
        start_checkpoint=start,
        training_file=training_file,
        output_dir=root / name,
        epochs=epochs,
        learning_rate_multiplier=1.0,
        adapter_size=4,
    )


def losses(job_dir: Path) -> list[float]:
    return [json.loads(line)["loss"] for line in (job_dir / "train_log.jsonl").open()]


# ------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    with one_torch_thread():
        yield


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="module")
def base(model_dir) -> str:
    return str(model_dir)


@pytest.fixture(scope="module")
def trained(model_dir, tmp_path_factory):
    """Two agents' adapters trained on different data by one provider."""
    root = tmp_path_factory.mktemp("tuning")
    provider = local_provider(model_dir)
    specs = {
        word: spec(
            root, f"agent-{word}", write_sft(root / f"{word}.jsonl", f"{word} " * 3), str(model_dir)
        )
        for word in ("apple", "banana")
    }
    status = {word: provider.poll_tuning(provider.start_tuning(s)) for word, s in specs.items()}
    yield provider, specs, status
    asyncio.run(provider.aclose())


@pytest.fixture
def fresh(model_dir):
    providers = []

    def make(**settings) -> LocalProvider:
        providers.append(local_provider(model_dir, **settings))
        return providers[-1]

    yield make
    for p in providers:
        p.close()


# ------------------------------------------------------------------ the extra


def test_import_does_not_import_torch():
    code = (
        "import sys, mafine.providers.local as m; "
        "assert m.LocalSettings and 'torch' not in sys.modules "
        "and 'transformers' not in sys.modules, sorted(sys.modules)"
    )
    env = {**os.environ, "PYTHONPATH": SRC}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)


@pytest.mark.parametrize("missing", ["torch", "peft"])
def test_missing_extra_is_one_clear_error(missing):
    code = (
        f"import sys; sys.modules[{missing!r}] = None\n"
        "from mafine.errors import MafineError\n"
        "from mafine.providers.local import LocalProvider\n"
        "try:\n"
        "    LocalProvider('some/model')\n"
        "except MafineError as exc:\n"
        "    print(exc)\n"
    )
    env = {**os.environ, "PYTHONPATH": SRC}
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, env=env, capture_output=True, text=True
    )
    assert out.stdout.strip() == EXTRA_MESSAGE
    assert "\n" not in EXTRA_MESSAGE and "mafine[local]" in EXTRA_MESSAGE


def test_settings_reject_unknown_keys_and_resolve_cpu():
    from mafine.providers.local.engine import resolve_device, resolve_dtype

    with pytest.raises(ValueError):
        LocalSettings(lora_rnak=8)
    assert resolve_dtype("auto", torch.device("cpu")) == torch.float32
    assert resolve_dtype("float16", torch.device("cpu")) == torch.float16
    if not torch.cuda.is_available():
        assert resolve_device("auto").type in {"cpu", "mps"}
        with pytest.raises(MafineError, match="no CUDA"):
            resolve_device("cuda")


# ------------------------------------------------------------------ generation


def test_generation_is_batched_and_deterministic_per_request(fresh, base):
    requests = [
        request(base, "What is 1 + 2?", seed=1),
        request(base, "What is 11 - 7? Think step by step, then answer.", seed=1),
        request(base, "What is 1 + 2?", seed=1, sample_index=1),
        request(base, "What is 3 + 9? " * 4, seed=2, max_tokens=4),
        request(base, "What is 1 + 2?", seed=3, temperature=0.0),
        request(base, "What is 1 + 2?", seed=4, temperature=0.7, top_p=0.5),
    ]
    batched = fresh()
    together = generate_all(batched, requests)
    assert batched.stats.generate_calls == 1  # one batched call for the whole burst
    assert batched.stats.generate_rows == len(requests)

    alone = generate_one_by_one(fresh(), requests)
    reversed_batch = generate_all(fresh(), requests[::-1])[::-1]
    assert together == alone == reversed_batch  # a row's output ignores its batch-mates
    assert generate_all(batched, requests) == together  # and reruns give the same
    assert together[0] != together[2]  # another sample index, another sample
    assert together[0] != generate_one_by_one(batched, [request(base, "What is 1 + 2?", seed=9)])[0]


def test_greedy_ignores_seed_and_usage_counts_tokens(fresh, base):
    provider = fresh()
    greedy = [request(base, seed=s, temperature=0.0, max_tokens=6) for s in (0, 1)]
    texts = generate_all(provider, greedy)
    assert texts[0] == texts[1]
    completion = asyncio.run(provider.generate(request(base, max_tokens=5)))
    assert 1 <= completion.usage.output_tokens <= 5
    assert completion.usage.prompt_tokens > 0
    assert completion.usage.total_tokens == (
        completion.usage.prompt_tokens + completion.usage.output_tokens
    )
    assert completion.finish_reason in {"stop", "length"}


def test_unknown_model_is_a_clear_error(fresh, tmp_path):
    provider = fresh()
    with pytest.raises(MafineError, match="unknown local model"):
        asyncio.run(provider.generate(request(str(tmp_path / "nowhere"))))
    missing = str(tmp_path / "no" / "model")
    broken = local_provider(missing)
    with pytest.raises(MafineError, match="cannot load local model"):
        asyncio.run(broken.generate(request(missing)))
    broken.close()


# ------------------------------------------------------------------ training data


def test_loss_covers_the_final_reply_only_token_by_token(fresh, base, tmp_path):
    """A critic example (the whole debate) learns its final response alone, with every
    earlier turn as context; the tokens TRL trains on are those inference feeds the model."""
    from mafine.providers.local.sft_data import prompt_completion
    from mafine.providers.local.training import make_trainer

    engine = fresh()._engine_now()
    messages = [
        {"role": "user", "content": "What is 4 + 4?"},
        {"role": "assistant", "content": "apple 9"},
        {"role": "user", "content": "Other agents said 8. Update your answer."},
        {"role": "assistant", "content": "banana 8"},
    ]
    job = spec(tmp_path, "critic", tmp_path / "unused.jsonl", base)
    row = make_trainer(engine, engine.base, job, [prompt_completion(messages)]).train_dataset[0]
    ids, labels = row["input_ids"], row["labels"]
    assert len(ids) == len(labels)
    # The whole conversation, tokenized exactly as the engine renders and encodes it.
    assert ids == engine.encode(engine.render(messages, generation_prompt=False))
    # Everything up to the final reply is context: what inference feeds the model.
    prompt = engine.encode(engine.render(messages[:3], generation_prompt=True))
    assert ids[: len(prompt)] == prompt
    assert labels[: len(prompt)] == [-100] * len(prompt)
    # Every token after it is learned: the final reply and its end-of-turn marker.
    assert labels[len(prompt) :] == ids[len(prompt) :]
    decode = engine.tokenizer.decode
    assert decode(ids[len(prompt) :]) == "banana 8<|im_end|>\n"
    assert "apple" in decode(prompt)  # the wrong first answer is context, never a target


def test_a_generation_example_learns_its_round_one_response(fresh, base, tmp_path):
    from mafine.providers.local.sft_data import prompt_completion
    from mafine.providers.local.training import make_trainer

    engine = fresh()._engine_now()
    messages = [
        {"role": "user", "content": "What is 4 + 4?"},
        {"role": "assistant", "content": "apple 8"},
    ]
    job = spec(tmp_path, "generator", tmp_path / "unused.jsonl", base)
    row = make_trainer(engine, engine.base, job, [prompt_completion(messages)]).train_dataset[0]
    prompt = engine.encode(engine.render(messages[:1], generation_prompt=True))
    learned = [t for t, label in zip(row["input_ids"], row["labels"], strict=True) if label != -100]
    assert row["input_ids"][: len(prompt)] == prompt
    assert engine.tokenizer.decode(learned) == "apple 8<|im_end|>\n"


# ------------------------------------------------------------------ adapters


def test_training_loss_falls(trained):
    _, specs, status = trained
    for word, s in specs.items():
        assert status[word].state == "succeeded"
        curve = losses(s.output_dir)
        assert len(curve) == 12  # 8 examples / batch 4 = 2 steps per epoch, 6 epochs
        assert sum(curve[-2:]) / 2 < sum(curve[:2]) / 2 - 0.3


def test_adapters_trained_on_different_data_answer_differently(trained, base):
    provider, _, status = trained
    apple, banana = status["apple"].serving_model, status["banana"].serving_model
    assert apple != banana and apple != base
    greedy = [request(m, temperature=0.0) for m in (base, apple, banana)]
    out_base, out_apple, out_banana = generate_all(provider, greedy)
    assert "apple" in out_apple and "banana" not in out_apple
    assert "banana" in out_banana and "apple" not in out_banana
    assert out_base != out_apple
    sampled = generate_all(provider, [request(m, seed=5) for m in (apple, banana)])
    assert sampled[0] != sampled[1]


def test_the_adapter_written_is_the_one_used_later(trained, fresh, base):
    provider, _, status = trained
    apple = status["apple"].serving_model
    assert status["apple"].checkpoint == apple
    requests = [request(apple, temperature=0.0), request(apple, seed=3), request(base, seed=3)]
    in_memory = generate_all(provider, requests)

    later = fresh()  # a new process's view: only the files on disk
    assert generate_all(later, requests) == in_memory
    engine = later._engine_now()
    peft_name = engine.adapters[apple]
    saved = load_file(str(Path(apple) / "adapter_model.safetensors"))
    loaded = {
        n: p for n, p in engine.model.named_parameters() if f".{peft_name}." in n and "lora_" in n
    }
    assert len(loaded) == len(saved) > 0
    for key, tensor in saved.items():
        match = [
            p
            for n, p in loaded.items()
            if n.replace(f".{peft_name}", "").endswith(key.removeprefix("base_model.model."))
        ]
        assert len(match) == 1 and torch.equal(match[0].detach(), tensor)


def test_base_model_is_untouched_by_loaded_adapters(trained, fresh, base):
    provider, _, _ = trained
    requests = [request(base, temperature=0.0), request(base, seed=7)]
    assert generate_all(provider, requests) == generate_all(fresh(), requests)


def test_unloaded_adapters_reload_from_disk(trained, fresh, base):
    provider, _, status = trained
    apple, banana = status["apple"].serving_model, status["banana"].serving_model
    requests = [request(m, seed=2) for m in (apple, banana, base)]
    expected = generate_all(provider, requests)

    small = fresh(max_adapters=1)
    got = generate_one_by_one(small, requests + requests)  # apple, banana, base, apple, ...
    assert got == expected + expected
    engine = small._engine_now()
    assert list(engine.adapters) == [banana]
    assert set(engine.peft.peft_config) == {engine.adapters[banana]}


def test_gradient_checkpointing_trains_the_same(trained, fresh, tmp_path):
    _, specs, _ = trained
    plain = fresh(lora_dropout=0.0)
    checkpointed = fresh(lora_dropout=0.0, gradient_checkpointing=True)
    curves = []
    for provider, label in ((plain, "plain"), (checkpointed, "ckpt")):
        s = spec(
            tmp_path / label,
            "agent-apple",
            specs["apple"].training_file,
            specs["apple"].start_checkpoint,
            1,
        )
        assert provider.poll_tuning(provider.start_tuning(s)).state == "succeeded"
        curves.append(losses(s.output_dir))
    assert curves[0] == pytest.approx(curves[1], rel=1e-4)


def test_rerun_retrains_nothing(trained, fresh):
    _, specs, status = trained
    s = specs["apple"]
    before = {p: p.stat().st_mtime_ns for p in s.output_dir.rglob("*") if p.is_file()}
    again = fresh()
    job = again.start_tuning(s)
    assert again.poll_tuning(job) == status["apple"]
    assert again.stats.trainings == 0
    assert {p: p.stat().st_mtime_ns for p in s.output_dir.rglob("*") if p.is_file()} == before


def test_continue_from_a_previous_adapter(trained, fresh, tmp_path):
    _, specs, status = trained
    provider = fresh()
    previous = status["apple"].checkpoint
    follow = spec(tmp_path, "agent-apple-2", specs["apple"].training_file, previous, epochs=1)
    result = provider.poll_tuning(provider.start_tuning(follow))
    assert result.state == "succeeded"
    first = losses(specs["apple"].output_dir)
    # Continued training starts where the previous adapter ended, not from the base.
    assert losses(follow.output_dir)[0] < first[0] - 0.3
    done = json.loads((follow.output_dir / "DONE.json").read_text())
    assert done["start_checkpoint"] == previous


def test_a_started_job_resumes_in_another_provider(fresh, base, tmp_path):
    s = spec(tmp_path, "agent-cherry", write_sft(tmp_path / "c.jsonl", "cherry", n=4), base, 1)
    job = fresh().start_tuning(s)  # the first process stops before polling
    later = fresh()
    result = later.poll_tuning(job)
    assert result.state == "succeeded" and later.stats.trainings == 1
    assert result.serving_model == str(s.output_dir / "adapter")


def test_bad_training_data_fails_the_job(fresh, base, tmp_path):
    provider = fresh()
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    result = provider.poll_tuning(provider.start_tuning(spec(tmp_path, "agent-x", empty, base)))
    assert result.state == "failed" and "no training examples" in (result.error or "")
    assert provider.poll_tuning(str(tmp_path / "never-started")).state == "failed"


# ------------------------------------------------------------------ scoring


def test_score_gives_token_logprobs_under_each_model(trained, base):
    provider, _, status = trained
    apple, banana = status["apple"].serving_model, status["banana"].serving_model
    response = "apple apple apple"
    messages = user(PROMPT)

    async def main():
        return await asyncio.gather(
            *(provider.score(m, messages, response) for m in (base, apple, banana))
        )

    under_base, under_apple, under_banana = asyncio.run(main())
    engine = provider._engine_now()
    assert len(under_base) == len(engine.encode(response)) == len(under_apple)
    assert all(lp <= 0.0 for lp in under_base + under_apple)
    assert sum(under_apple) > sum(under_base) and sum(under_apple) > sum(under_banana)
    alone = asyncio.run(provider.score(apple, messages, response))
    assert alone == pytest.approx(under_apple, abs=1e-5)
    assert asyncio.run(provider.score(base, messages, "")) == []


def test_data_parallel_training_on_two_cpu_processes(fresh, base, tmp_path):
    """train_processes: 2 runs the job under torchrun: two processes, one TRL trainer each,
    DistributedDataParallel on gloo; the first publishes the adapter, which then serves."""
    provider = fresh(train_processes=2, per_device_batch_size=2)
    job = spec(tmp_path, "agent-dp", write_sft(tmp_path / "dp.jsonl", "cherry " * 3), base)
    status = provider.poll_tuning(provider.start_tuning(job))
    assert status.state == "succeeded", status.error
    done = json.loads((job.output_dir / "DONE.json").read_text())
    assert done["processes"] == 2
    assert done["steps"] == 12  # 8 examples / (2 per process x 2 processes) x 6 epochs
    curve = losses(job.output_dir)
    assert sum(curve[-2:]) / 2 < sum(curve[:2]) / 2 - 0.3
    (text,) = generate_all(provider, [request(status.serving_model, temperature=0.0)])
    assert "cherry" in text
