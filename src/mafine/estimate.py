"""`mafine estimate`: the requests, tokens and cost of a whole run, before a cent is spent.

Counts are exact for the config (agents, critics, rounds, summaries, iterations, split sizes);
tokens are estimates: prompts are the config's own templates filled with the data's questions
(the run directory's problems when prepared, else a sample drawn like `prepare` would), at
`CHARS_PER_TOKEN` characters a token, and every response is assumed to be `response_tokens`
long (summaries `summary_tokens`), plus `thinking_tokens` billed as output. Tuning data is
bounded above by one example per train problem per agent model.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from mafine.config import Config, variant_config
from mafine.methods import METHODS
from mafine.pricing import BATCH_DISCOUNT, PRICES_AS_OF, price_of, priced_model
from mafine.prompts import render

CHARS_PER_TOKEN = 4.0
DEFAULT_QUESTION_TOKENS = 40  # when no problem can be read or drawn
SAMPLE = 200


@dataclass(frozen=True)
class Assumptions:
    response_tokens: int = 300
    summary_tokens: int = 200
    thinking_tokens: int = 0


@dataclass
class Line:
    """One kind of work: how many requests, input and output tokens."""

    name: str
    requests: int = 0
    input_tokens: float = 0.0
    output_tokens: float = 0.0

    def add(self, requests: int, input_tokens: float, output_tokens: float) -> None:
        self.requests += requests
        self.input_tokens += input_tokens
        self.output_tokens += output_tokens


@dataclass
class Estimate:
    model: str | None
    question_tokens: float
    question_source: str
    assumptions: Assumptions
    lines: list[Line] = field(default_factory=list)
    tuning_jobs: int = 0
    training_tokens: float = 0.0
    skipped: list[str] = field(default_factory=list)  # tuned methods the provider cannot run

    @property
    def total(self) -> Line:
        total = Line("total")
        for line in self.lines:
            total.add(line.requests, line.input_tokens, line.output_tokens)
        return total

    def cost(self, line: Line, batch: bool = False) -> float | None:
        price = price_of(self.model) if self.model else None
        if price is None:
            return None
        dollars = (line.input_tokens * price.input + line.output_tokens * price.output) / 1e6
        return dollars * (BATCH_DISCOUNT if batch else 1.0)

    def tuning_cost(self) -> float | None:
        price = price_of(self.model) if self.model else None
        if price is None or price.tuning is None:
            return None
        return self.training_tokens * price.tuning / 1e6

    def as_dict(self) -> dict[str, Any]:
        rows = [*self.lines, self.total]
        return {
            "model": self.model,
            "prices_as_of": PRICES_AS_OF,
            "question_tokens": round(self.question_tokens, 1),
            "question_source": self.question_source,
            "assumptions": self.assumptions.__dict__,
            "lines": [
                {
                    "name": line.name,
                    "requests": line.requests,
                    "input_tokens": round(line.input_tokens),
                    "output_tokens": round(line.output_tokens),
                    "cost_usd": _r(self.cost(line)),
                    "batch_cost_usd": _r(self.cost(line, batch=True)),
                }
                for line in rows
            ],
            "tuning": {
                "jobs": self.tuning_jobs,
                "training_tokens_at_most": round(self.training_tokens),
                "cost_usd_at_most": _r(self.tuning_cost()),
                "skipped_methods": self.skipped,
            },
        }


def tokens(text: str) -> float:
    return len(text) / CHARS_PER_TOKEN


def estimate(config: Config, assumptions: Assumptions | None = None) -> Estimate:
    """The whole run: the baselines (once), every iteration's train and eval debates and
    tuning jobs, and the same for each compared variant (`evaluation.compare`)."""
    assumptions = assumptions or Assumptions()
    question_tokens, source = question_size(config)
    result = Estimate(
        model=priced_model(config),
        question_tokens=question_tokens,
        question_source=source,
        assumptions=assumptions,
    )
    data = config.data
    if config.evaluation.baselines:
        baseline = Line("baseline (eval, once)")
        baseline.add(*_times(_per_problem(config, question_tokens, assumptions), data.eval_size))
        result.lines.append(baseline)
    tuning = config.provider.capabilities.tuning  # `mafine run` skips what tunes without it
    if tuning:
        _add_method(result, config, "iteration", question_tokens, assumptions, False)
    for name in config.evaluation.compare:
        variant = variant_config(config, name)
        if METHODS.get(name).base_only:
            _add_base_only(result, config, variant, name, question_tokens, assumptions)
            continue
        if not tuning:
            result.skipped.append(name)
            continue
        # the first train debate is the main run's when the debate is the same (journal)
        shared = _same_requests(variant, config) and (variant.debate, variant.agents) == (
            config.debate,
            config.agents,
        )
        _add_method(result, variant, f"{name}: iteration", question_tokens, assumptions, shared)
    return result


def _same_requests(variant: Config, config: Config) -> bool:
    """Whether a variant's requests for the same messages are the main run's (the journal's
    key: model, prompts, sampling); e.g. a method at another temperature shares none."""
    return (variant.provider.model, variant.prompts, variant.sampling) == (
        config.provider.model,
        config.prompts,
        config.sampling,
    )


def _add_base_only(
    result: Estimate,
    config: Config,
    variant: Config,
    name: str,
    question_tokens: float,
    assumptions: Assumptions,
) -> None:
    """A base-only method: one eval debate of the base models, no tuning. Its round-1 samples
    that the baseline debate asks too (same sample index) come from the journal."""
    requests, inputs, outputs, _ = _per_problem(variant, question_tokens, assumptions)
    reused = 0
    alone = variant.debate.rounds == 1 and _same_requests(variant, config)
    if config.evaluation.baselines and alone:
        reused = min(variant.agents.count, config.agents.count)
    share = (requests - reused) / requests if requests else 0.0
    line = Line(f"{name}: eval, tunes nothing")
    line.add(
        *_times((requests - reused, inputs * share, outputs * share, 0.0), variant.data.eval_size)
    )
    result.lines.append(line)


def _add_method(
    result: Estimate,
    config: Config,
    label: str,
    question_tokens: float,
    assumptions: Assumptions,
    shared_train: bool,
) -> None:
    """One method's iterations: train and eval debates, and an upper bound on its tuning."""
    data = config.data
    per_problem = _per_problem(config, question_tokens, assumptions)
    for iteration in range(1, config.iterations + 1):
        train = 0 if (shared_train and iteration == 1) else data.train_size
        line = Line(f"{label} {iteration} (train+eval)")
        line.add(*_times(per_problem, train + data.eval_size))
        result.lines.append(line)
    critic_example = per_problem[3]
    generator_example = question_tokens + _question_overhead(config) + assumptions.response_tokens
    critics = config.agents.critics if config.finetune.tune_critics else 0
    per_iteration = data.train_size * (
        config.agents.count * generator_example + critics * critic_example
    )
    result.tuning_jobs += config.iterations * (config.agents.count + critics)
    result.training_tokens += config.iterations * per_iteration * config.finetune.epochs


def _times(per_problem: tuple[int, float, float, float], problems: int) -> tuple[int, float, float]:
    requests, inputs, outputs, _ = per_problem
    return requests * problems, inputs * problems, outputs * problems


def _question_overhead(config: Config) -> float:
    return tokens(render(config.prompts.question, question=""))


def _per_problem(
    config: Config, question_tokens: float, a: Assumptions
) -> tuple[int, float, float, float]:
    """(requests, input tokens, output tokens, tokens of a critic's final conversation)."""
    n, c, rounds = config.agents.count, config.agents.critics, config.debate.rounds
    prompts = config.prompts
    response = a.response_tokens
    output = a.response_tokens + a.thinking_tokens
    summary_output = a.summary_tokens + a.thinking_tokens
    question = question_tokens + _question_overhead(config)
    requests, inputs, outputs = n, n * question, n * output
    conversation = question + response  # a critic's growing conversation
    for _ in range(2, rounds + 1):
        others = (n - 1) * (response + 4)  # "Solution k:" headers
        if config.debate.summarize:
            summary_prompt = tokens(render(prompts.summarize, question="", responses=""))
            summary_prompt += question_tokens + others
            requests += c
            inputs += c * summary_prompt
            outputs += c * summary_output
            advice = tokens(render(prompts.debate_summary, summary="")) + a.summary_tokens
        else:
            advice = tokens(render(prompts.debate_responses, responses="")) + others
        conversation += advice
        requests += c
        inputs += c * conversation
        outputs += c * output
        conversation += response
    return requests, inputs, outputs, conversation


def question_size(config: Config) -> tuple[float, str]:
    """Mean question length in tokens, and where it came from."""
    questions: list[str] = []
    source = ""
    if config.run_dir is not None:
        path = config.run_dir / "problems" / "train.jsonl"
        if path.is_file():
            from mafine.artifacts import Problem
            from mafine.jsonl import read_rows

            questions = [p.question for p in itertools.islice(read_rows(path, Problem), SAMPLE)]
            source = f"{len(questions)} problems of {path}"
    if not questions:
        try:
            from mafine.stages import prepare

            records = prepare.source_records(config.data.source, config.seed)
            questions = [record[1] for record in itertools.islice(records, SAMPLE)]
            name = prepare.source_name(config.data.source)
            source = f"{len(questions)} problems drawn from {name}"
        except Exception as exc:  # no data here (e.g. a hub set offline): assume
            questions = []
            source = f"assumed (could not read the data: {str(exc).splitlines()[0][:80]})"
    if not questions:
        return float(DEFAULT_QUESTION_TOKENS), source or "assumed"
    return sum(tokens(q) for q in questions) / len(questions), source


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def render_estimate(result: Estimate, config: Config) -> list[Any]:
    """Rich renderables: the table and the notes under it."""
    from rich.table import Table

    from mafine.pricing import format_cost
    from mafine.registry import resolve

    entry = config.provider.entry
    model = result.model or f"{entry.name}: {config.provider.model} (not billed per token)"
    prices = f", prices of {PRICES_AS_OF}" if entry.priced else ""
    table = Table(
        title=f"estimate for {model}: {config.iterations} iteration(s), "
        f"{config.data.train_size} train / {config.data.eval_size} eval problems{prices}"
    )
    costs = ("standard", "batch") if entry.priced else ()  # unpriced: no cost columns
    for column in ("work", "requests", "input tokens", "output tokens", *costs):
        table.add_column(column, justify="left" if column == "work" else "right")
    for line in [*result.lines, result.total]:
        cells = [f"{line.requests:,}", f"{line.input_tokens:,.0f}", f"{line.output_tokens:,.0f}"]
        if entry.priced:
            cells += [format_cost(result.cost(line)), format_cost(result.cost(line, batch=True))]
        table.add_row(line.name, *cells)
    a = result.assumptions
    notes = [
        f"questions: {result.question_tokens:.0f} tokens on average ({result.question_source}); "
        f"responses assumed {a.response_tokens} tokens, summaries {a.summary_tokens}, "
        f"thinking {a.thinking_tokens} (billed as output); {CHARS_PER_TOKEN:g} characters a "
        "token.",
        f"tuning: {result.tuning_jobs} jobs, at most {result.training_tokens:,.0f} training "
        f"tokens ({config.finetune.epochs} epochs)" + _tuning_cost(result, entry.priced)
        if config.provider.capabilities.tuning
        else f"tuning: none; provider {entry.name} cannot tune models here, so `mafine run` "
        "runs only the baselines and the methods that tune nothing"
        + (f" (it skips {', '.join(result.skipped)})" if result.skipped else ""),
    ]
    if entry.estimate_notes is not None:
        notes.extend(resolve(entry.estimate_notes)(config, result))
    return [table, *notes]


def _tuning_cost(result: Estimate, priced: bool) -> str:
    from mafine.pricing import format_cost

    if not priced:
        return ""
    cost = result.tuning_cost()
    return f": {format_cost(cost)}" + (
        "" if cost is not None else " (no tuning price for this model)"
    )
