"""The fake Gemini, exercised through the real google-genai and google-cloud-storage clients."""

from __future__ import annotations

import _thread
import asyncio
import importlib
import json
import random
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
import warnings
from pathlib import Path

import pytest
from google import genai
from google.genai import errors, types

from mafine.config import FakeSettings
from mafine.prompts import DEBATE_WITH_RESPONSES, DEBATE_WITH_SUMMARY, QUESTION, SUMMARIZE
from mafine.providers.fake_gemini import FAKE_LOCATION, FAKE_PROJECT, FakeGemini, behaviour, storage
from mafine.providers.fake_gemini.solver import parse_number, solve_text

MODEL = "gemini-3-flash"


def settings(**overrides) -> FakeSettings:
    """Fake settings that name the served models explicitly (not the config's defaults)."""
    return FakeSettings(models=[MODEL, "gemini-3-flash-lite"], **overrides)


pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


# ---- fixtures --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def fake():
    with FakeGemini(settings(error_rate=0.0, tuning_polls=1)) as running:
        yield running


# Keep a genai.Client in a variable while using it: google-genai 3.4 closes its HTTP client in
# Client.__del__, so `api_client(fake).models.generate_content(...)` fails ("client has been
# closed") once the temporary Client is collected.
def api_client(fake: FakeGemini, key: str = "test-key") -> genai.Client:
    return genai.Client(api_key=key, http_options=types.HttpOptions(base_url=fake.url))


def vertex_client(fake: FakeGemini, location: str = FAKE_LOCATION) -> genai.Client:
    """A Vertex AI client; base models are served from global (the fake serves regionally)."""
    import google.oauth2.credentials

    return genai.Client(
        vertexai=True,
        project=FAKE_PROJECT,
        location=location,
        credentials=google.oauth2.credentials.Credentials(token="fake-token"),
        http_options=types.HttpOptions(base_url=fake.url),
    )


def storage_client(fake: FakeGemini, credentials=None):
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    return storage.Client(
        project=FAKE_PROJECT,
        credentials=credentials or AnonymousCredentials(),
        client_options={"api_endpoint": fake.url},
    )


def ask(question: str) -> str:
    return QUESTION.format(question=question)


def row(*texts: str) -> dict:
    roles = ["user", "model"] * len(texts)
    return {
        "contents": [
            {"role": r, "parts": [{"text": t}]} for r, t in zip(roles, texts, strict=False)
        ],
    }


def upload_rows(fake: FakeGemini, tmp_path: Path, name: str, rows: list[dict]) -> str:
    path = tmp_path / Path(name).name
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    storage_client(fake).bucket("tuning").blob(name).upload_from_filename(str(path))
    return f"gs://tuning/{name}"


def tune(client: genai.Client, base_model: str, uri: str) -> types.TuningJob:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return client.tunings.tune(
            base_model=base_model,
            training_dataset=types.TuningDataset(gcs_uri=uri),
            config=types.CreateTuningJobConfig(
                epoch_count=2,
                learning_rate_multiplier=1.0,
                adapter_size="ADAPTER_SIZE_FOUR",
                tuned_model_display_name="agent-0",
            ),
        )


def wait(client: genai.Client, job: types.TuningJob) -> types.TuningJob:
    for _ in range(20):
        job = client.tunings.get(name=job.name)
        if job.has_ended:
            return job
    raise AssertionError("tuning job never finished")


def deepmind_problems(module: str, count: int, seed: int = 0) -> list[tuple[str, str]]:
    """Real problems from DeepMind's generator (with the small numpy-2/sympy import shim)."""
    import numpy as np

    diophantine = importlib.import_module("sympy.solvers.diophantine")
    diophantine = sys.modules["sympy.solvers.diophantine"]
    if not hasattr(diophantine, "base_solution_linear"):

        def _unavailable(*args, **kwargs):
            raise NotImplementedError("base_solution_linear")

        diophantine.base_solution_linear = _unavailable
    if "object" not in np.__dict__:
        np.object = object
    from mathematics_dataset.modules import arithmetic

    random.seed(seed)
    np.random.seed(seed)
    sets = [arithmetic.train(lambda entropy: entropy), arithmetic.test()]
    problems = []
    for index in range(count):
        problem = sets[index % 2][module]()
        problems.append((str(problem.question), str(problem.answer)))
    return problems


def text_of(response) -> str:
    return response.candidates[0].content.parts[0].text


# ---- generation through the real client ------------------------------------------------
def test_api_key_generate(fake):
    client = api_client(fake)
    response = client.models.generate_content(
        model=MODEL,
        contents=ask("What is -0.1 - 2.5?"),
        config=types.GenerateContentConfig(temperature=1.0, top_p=0.9, seed=1),
    )
    assert response.text.rstrip().endswith("\\boxed{-2.6}")
    assert response.candidates[0].finish_reason == types.FinishReason.STOP
    usage = response.usage_metadata
    assert usage.prompt_token_count > 10 and usage.candidates_token_count > 3
    # Gemini 3 thinks unless told otherwise; thinking tokens count in the total.
    assert usage.thoughts_token_count > 0
    assert usage.total_token_count == (
        usage.prompt_token_count + usage.candidates_token_count + usage.thoughts_token_count
    )
    assert response.model_version == MODEL


def test_vertex_generate_sync_and_async(fake):
    client = vertex_client(fake, "global")
    config = types.GenerateContentConfig(
        system_instruction="You are a careful mathematician.", seed=4
    )
    sync = client.models.generate_content(model=MODEL, contents=ask("Sum 6 and -3."), config=config)

    async def run():
        return await client.aio.models.generate_content(
            model=MODEL, contents=ask("Sum 6 and -3."), config=config
        )

    asynchronous = asyncio.run(run())
    assert sync.text == asynchronous.text
    assert sync.text.endswith("\\boxed{3}")


def test_async_api_key_generate(fake):
    async def run():
        client = api_client(fake)
        prompts = [ask(f"What is {n} plus 1?") for n in range(5)]
        return await asyncio.gather(
            *(client.aio.models.generate_content(model=MODEL, contents=p) for p in prompts)
        )

    responses = asyncio.run(run())
    assert [r.text.rsplit("\\boxed", 1)[1] for r in responses] == [
        "{1}",
        "{2}",
        "{3}",
        "{4}",
        "{5}",
    ]


def test_determinism_and_seed_variation():
    fake_settings = settings(error_rate=0.5)
    contents = ask("Work out 0.3 - -1.")
    with FakeGemini(fake_settings) as one, FakeGemini(fake_settings) as two:
        client_one, client_two = api_client(one), api_client(two)

        def generate(client: genai.Client, seed: int) -> str:
            config = types.GenerateContentConfig(seed=seed)
            return client.models.generate_content(
                model=MODEL, contents=contents, config=config
            ).text

        first, again, other_server = (
            generate(client_one, 7),
            generate(client_one, 7),
            generate(client_two, 7),
        )
        assert first == again == other_server
        texts = {generate(client_one, seed) for seed in range(12)}
    assert len(texts) > 1


def test_determinism_across_processes(fake, tmp_path):
    body = {"contents": [{"role": "user", "parts": [{"text": ask("Add -4 and 0.5.")}]}]}
    body["generationConfig"] = {"seed": 11}
    script = (
        "import json, sys, urllib.request\n"
        "from mafine.config import FakeSettings\n"
        "from mafine.providers.fake_gemini import FakeGemini\n"
        f"with FakeGemini(FakeSettings(error_rate=0.0, models=[{MODEL!r}])) as f:\n"
        f"    url = f.url + '/v1beta/models/{MODEL}:generateContent'\n"
        "    headers = {'x-goog-api-key': 'k'}\n"
        "    req = urllib.request.Request(url, data=sys.stdin.buffer.read(), headers=headers)\n"
        "    sys.stdout.write(urllib.request.urlopen(req).read().decode())\n"
    )
    outputs = set()
    for hash_seed in ("1", "2"):
        result = subprocess.run(
            [sys.executable, "-c", script],
            input=json.dumps(body).encode(),
            capture_output=True,
            check=True,
            env={"PYTHONHASHSEED": hash_seed, "PATH": "/usr/bin:/bin"},
        )
        outputs.add(result.stdout)
    here = _post(fake, f"/v1beta/models/{MODEL}:generateContent", body, {"x-goog-api-key": "k"})
    assert outputs == {here}


def test_unknown_model_is_404(fake):
    client, vertex = api_client(fake), vertex_client(fake)
    with pytest.raises(errors.ClientError) as caught:
        client.models.generate_content(model="gemini-2.0-flash-exp", contents="hi")
    assert caught.value.code == 404
    assert caught.value.status == "NOT_FOUND"
    with pytest.raises(errors.ClientError) as caught:
        vertex.models.generate_content(model="gemini-2.0-flash-exp", contents="hi")
    assert caught.value.code == 404
    with pytest.raises(errors.ClientError) as caught:
        vertex.models.generate_content(
            model=f"projects/{FAKE_PROJECT}/locations/{FAKE_LOCATION}/endpoints/999",
            contents="hi",
        )
    assert caught.value.code == 404


def test_missing_api_key_is_401_and_keys_are_never_printed(fake, capfd):
    body = {"contents": [{"role": "user", "parts": [{"text": "What is 1 + 1?"}]}]}
    with pytest.raises(urllib.error.HTTPError) as caught:
        _post(fake, f"/v1beta/models/{MODEL}:generateContent", body, {})
    assert caught.value.code == 401
    error = json.loads(caught.value.read())["error"]
    assert error == {
        "code": 401,
        "message": error["message"],
        "status": "UNAUTHENTICATED",
    }
    client = api_client(fake, key="secret-key-4242")
    client.models.generate_content(model=MODEL, contents="1 + 1")
    out, err = capfd.readouterr()
    assert "secret-key-4242" not in out + err
    assert "generateContent" not in out + err  # no request logging at all


def test_api_version_paths_are_interchangeable(fake):
    body = {"contents": [{"role": "user", "parts": [{"text": "What is 2 plus 3?"}]}]}
    answers = {
        _post(fake, f"/{version}/models/{MODEL}:generateContent", body, {"x-goog-api-key": "k"})
        for version in ("v1", "v1beta", "v1beta1")
    }
    assert len(answers) == 1
    assert json.loads(answers.pop())["candidates"][0]["content"]["parts"][0]["text"].endswith(
        "\\boxed{5}"
    )


# ---- Cloud Storage ---------------------------------------------------------------------
def test_storage_upload_with_real_client(fake, tmp_path):
    import google.oauth2.credentials

    path = tmp_path / "x.jsonl"
    path.write_text('{"contents": []}\n')
    for credentials in (None, google.oauth2.credentials.Credentials(token="x")):
        blob = storage_client(fake, credentials).bucket("b").blob("p/x.jsonl")
        blob.upload_from_filename(str(path))
        assert blob.size == path.stat().st_size
        assert fake.object_bytes("gs://b/p/x.jsonl") == path.read_bytes()
    assert blob.download_as_bytes() == path.read_bytes()
    assert blob.exists()


def test_storage_resumable_upload(fake):
    blob = storage_client(fake).bucket("b").blob("resumable.bin", chunk_size=256 * 1024)
    data = random.Random(0).randbytes(600 * 1024)
    with blob.open("wb") as handle:
        handle.write(data)
    assert fake.object_bytes("gs://b/resumable.bin") == data


def test_crc32c_fallback_matches_reference():
    import google_crc32c

    data = bytes(range(256)) * 40
    crc = 0xFFFFFFFF
    for byte in data:
        crc = storage._CRC_TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    assert crc ^ 0xFFFFFFFF == google_crc32c.value(data) == storage._crc32c(data)


# ---- tuning ----------------------------------------------------------------------------
def test_tuning_job_and_tuned_endpoint(fake, tmp_path):
    question = ask("What is 3 less than 7?")
    uri = upload_rows(
        fake,
        tmp_path,
        "run/agent0.jsonl",
        [row(question, "- I remember this one.\n\n\\boxed{4}"), row("hello", "memorised!")],
    )
    client = vertex_client(fake)
    job = tune(client, MODEL, uri)
    assert job.state == types.JobState.JOB_STATE_PENDING
    assert job.name.startswith(f"projects/{FAKE_PROJECT}/locations/{FAKE_LOCATION}/tuningJobs/")
    running = client.tunings.get(name=job.name)
    assert running.state == types.JobState.JOB_STATE_RUNNING
    done = wait(client, job)
    assert done.state == types.JobState.JOB_STATE_SUCCEEDED
    endpoint = done.tuned_model.endpoint
    assert endpoint.startswith(f"projects/{FAKE_PROJECT}/locations/{FAKE_LOCATION}/endpoints/")
    tuned = client.models.generate_content(model=endpoint, contents=question)
    assert tuned.text == "- I remember this one.\n\n\\boxed{4}"
    assert client.models.generate_content(model=endpoint, contents="hello").text == "memorised!"
    other = client.models.generate_content(model=endpoint, contents=ask("Subtract 2 from 7."))
    assert other.text.endswith("\\boxed{5}")  # unknown conversations: like the base model


def test_continued_tuning_inherits_memory(fake, tmp_path):
    client = vertex_client(fake)
    first_uri = upload_rows(fake, tmp_path, "c/one.jsonl", [row("a", "A1"), row("b", "B1")])
    first = wait(client, tune(client, MODEL, first_uri))
    second_uri = upload_rows(
        fake,
        tmp_path,
        "c/two.jsonl",
        [row("b", "B2"), row("c", "C2"), row("q", "first", "critique", "second")],
    )
    second = wait(client, tune(client, first.tuned_model.model, second_uri))
    assert second.state == types.JobState.JOB_STATE_SUCCEEDED
    assert second.pre_tuned_model.tuned_model_name == first.tuned_model.model
    endpoint = second.tuned_model.endpoint
    assert endpoint != first.tuned_model.endpoint

    def answer(model: str, contents) -> str:
        return client.models.generate_content(model=model, contents=contents).text

    assert answer(endpoint, "a") == "A1"
    assert answer(endpoint, "b") == "B2"
    assert answer(endpoint, "c") == "C2"
    conversation = [
        types.Content(role="user", parts=[types.Part(text="q")]),
        types.Content(role="model", parts=[types.Part(text="first")]),
        types.Content(role="user", parts=[types.Part(text="critique")]),
    ]
    assert answer(endpoint, conversation) == "second"
    assert answer(first.tuned_model.endpoint, "b") == "B1"


def test_tuning_failures(fake):
    client = vertex_client(fake)
    job = tune(client, MODEL, "gs://tuning/does-not-exist.jsonl")
    failed = wait(client, job)
    assert failed.state == types.JobState.JOB_STATE_FAILED
    assert failed.error.code == 400 and "does-not-exist" in failed.error.message
    with pytest.raises(errors.ClientError) as caught:
        tune(client, "gemini-2.0-flash-exp", "gs://tuning/x.jsonl")
    assert caught.value.code == 404
    with pytest.raises(errors.ClientError) as caught:
        tune(client, f"projects/{FAKE_PROJECT}/locations/{FAKE_LOCATION}/models/999", "gs://t/x")
    assert caught.value.code == 404


# ---- stats -----------------------------------------------------------------------------
def test_stats_and_fake_endpoints(tmp_path):
    with FakeGemini(settings(tuning_polls=0)) as fresh:
        client = api_client(fresh)
        for _ in range(2):
            client.models.generate_content(model=MODEL, contents="What is 1 + 2?")
        client.models.generate_content(model=MODEL, contents="What is 1 + 3?")
        upload_rows(fresh, tmp_path, "s.jsonl", [row("x", "y")])
        vertex = vertex_client(fresh)
        wait(vertex, tune(vertex, MODEL, "gs://tuning/s.jsonl"))
        stats = fresh.stats()
        assert stats["by_kind"]["generate"] == 3
        assert stats["by_kind"]["upload"] == 1
        assert stats["by_kind"]["tuning_create"] == 1
        assert stats["by_kind"]["tuning_get"] == 1
        assert stats["requests"] == sum(stats["by_kind"].values())
        assert sorted(stats["generate_keys"].values()) == [1, 2]
        assert all(len(key) == 64 for key in stats["generate_keys"])
        over_http = json.loads(urllib.request.urlopen(fresh.url + "/_fake/stats").read())
        assert over_http == fresh.stats()  # the stats endpoint is not counted itself
        reset = urllib.request.Request(fresh.url + "/_fake/reset", data=b"", method="POST")
        urllib.request.urlopen(reset).read()
        assert fresh.stats() == {"requests": 0, "by_kind": {}, "generate_keys": {}}


def test_serve_forever_stops_on_keyboard_interrupt():
    """The server stops cleanly and the interrupt goes on (`mafine fake-gemini` exits 130)."""
    fake = FakeGemini(settings()).start()  # serving before the interrupt can come
    # interrupt_main does nothing while SIGINT is not Python's handler; a stop after 30 s
    # turns a lost interrupt into a failure instead of a hang.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    interrupt, backstop = (
        threading.Timer(0.3, _thread.interrupt_main),
        threading.Timer(30, fake.stop),
    )
    interrupt.start()
    backstop.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            fake.serve_forever()
    finally:
        backstop.cancel()
        signal.signal(signal.SIGINT, previous)
    assert fake._server is None
    fake.start().stop()


# ---- answer behaviour ------------------------------------------------------------------
PHRASINGS = {
    "What is -0.1 - 2.5?": "-2.6",
    "Calculate 2 + -7.": "-5",
    "Work out 0.3 - -1.": "1.3",
    "Add -4 and 0.5.": "-3.5",
    "Sum 6 and -3.": "3",
    "Total of 0.1 and 4.": "4.1",
    "Put together 2 and 5.": "7",
    "Add together 2 and -5.": "-3",
    "What is -5 take away 3?": "-8",
    "Subtract 2 from 7.": "5",
    "What is 3 less than 7?": "4",
    "-3 + 5": "2",
    "-3+5": "2",
    "What is the distance between 2 and 5?": "3",
    "How far apart are 3 and 4?": "1",
    "What is the difference between 3 and -4?": "7",
    "What is 2 plus 3?": "5",
    "5 minus 2": "3",
    "What is 0.5 + 0.5?": "1",
    "Multiply -2 and 0.25.": "-0.5",
    "What is -0.6152 times 10?": "-6.152",
    "Divide 6 by -8.": "-3/4",
    "What is 226 divided by -6?": "-113/3",
    "Evaluate (2/(-15))/(4/12).": "-2/5",
    "What is the value of 7 + -38 + (7 - 16 - -2) + 2?": "-36",
}


@pytest.mark.parametrize("template", [QUESTION, "{question}", "Q: {question}\nAnswer in 2 lines."])
def test_solver_phrasings(template):
    for question, answer in PHRASINGS.items():
        solution = solve_text(template.format(question=question))
        assert solution is not None and solution.answer == answer, question


def test_solver_on_generated_problems():
    failures = []
    for module, count in [
        ("add_or_sub", 1200),
        ("add_sub_multiple", 150),
        ("mul", 150),
        ("div", 150),
        ("mixed", 150),
        ("mul_div_multiple", 100),
    ]:
        for question, gold in deepmind_problems(module, count):
            solution = solve_text(ask(question))
            if solution is None or solution.answer != gold:
                failures.append((module, question, gold, solution and solution.answer))
    assert failures == []


@pytest.mark.parametrize("error_rate", [0.0, 1.0])
def test_error_rate_extremes(error_rate):
    fake_settings = settings(error_rate=error_rate)
    for index, (question, gold) in enumerate(deepmind_problems("add_or_sub", 400, seed=3)):
        text = behaviour.respond([("user", ask(question))], fake_settings, random.Random(index))
        answer = behaviour.boxed_answers(text)[-1].text
        assert (answer == gold) is (error_rate == 0.0), (question, gold, answer)
        assert parse_number(answer) is not None
    with FakeGemini(fake_settings) as running:
        client = api_client(running)
        response = client.models.generate_content(
            model=MODEL, contents=ask("Put together 2 and 5.")
        )
        assert response.text.endswith("\\boxed{7}") is (error_rate == 0.0)


def test_unsolvable_text_gets_a_small_integer(fake):
    client = api_client(fake)
    text = client.models.generate_content(model=MODEL, contents="Tell me a joke").text
    answer = behaviour.boxed_answers(text)[-1].text
    assert 0 <= int(answer) <= 20


def critic_conversation(own: str, others: list[str]) -> list[types.Content]:
    responses = "\n\n".join(
        f"Agent {i}: - I computed it.\n\\boxed{{{a}}}" for i, a in enumerate(others)
    )
    return [
        types.Content(role="user", parts=[types.Part(text=ask("What is 2 plus 3?"))]),
        types.Content(role="model", parts=[types.Part(text=f"- Adding.\n\n\\boxed{{{own}}}")]),
        types.Content(
            role="user",
            parts=[types.Part(text=DEBATE_WITH_RESPONSES.format(responses=responses))],
        ),
    ]


@pytest.mark.parametrize(("adopt", "expected"), [(1.0, "7"), (0.0, "6")])
def test_critic_adoption(adopt, expected):
    with FakeGemini(settings(adopt_majority=adopt, error_rate=0.0)) as running:
        client = vertex_client(running, "global")
        for seed in range(5):
            response = client.models.generate_content(
                model=MODEL,
                contents=critic_conversation("6", ["7", "7", "6"]),
                config=types.GenerateContentConfig(seed=seed),
            )
            assert response.text.endswith(f"\\boxed{{{expected}}}")


def test_critic_without_own_answer_solves_afresh():
    fake_settings = settings(adopt_majority=0.0, error_rate=0.0)
    turns = [("user", ask("What is 2 plus 3?")), ("model", "no idea"), ("user", "Try again.")]
    text = behaviour.respond(turns, fake_settings, random.Random(0))
    assert text.endswith("\\boxed{5}")


def test_summary_then_critic_reads_summary(fake):
    responses = "\n\n".join(
        f"Agent {i}: - work\n\\boxed{{{a}}}" for i, a in enumerate(["12", "-3/4", "12"])
    )
    prompt = SUMMARIZE.format(question="What is 6 plus 6?", responses=responses)
    client = api_client(fake)
    summary = client.models.generate_content(model=MODEL, contents=prompt).text
    assert [b.text for b in behaviour.boxed_answers(summary)] == ["12", "-3/4"]
    assert [b.weight for b in behaviour.boxed_answers(summary)] == [2, 1]
    turns = [
        ("user", ask("What is 6 plus 6?")),
        ("model", "- hmm\n\\boxed{-3/4}"),
        ("user", DEBATE_WITH_SUMMARY.format(summary=summary)),
    ]
    fake_settings = settings(adopt_majority=1.0)
    for seed in range(5):
        text = behaviour.respond(turns, fake_settings, random.Random(seed))
        assert text.endswith("\\boxed{12}")


# ---- helpers ---------------------------------------------------------------------------
def _post(fake: FakeGemini, path: str, body: dict, headers: dict[str, str]) -> bytes:
    request = urllib.request.Request(
        fake.url + path,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **headers},
        method="POST",
    )
    with urllib.request.urlopen(request) as response:
        return response.read()
