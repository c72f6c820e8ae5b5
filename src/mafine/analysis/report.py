"""report.md and the terminal table of a run's metrics document (`analysis.metrics`).

`write_report(document, run_root)` renders report.md (with PNG plots when matplotlib is
installed) and `results_table(document)` is the same table for rich.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.table import Table
from rich.text import Text

from mafine.analysis import stats
from mafine.analysis.diversity import Diversity, cross_nll
from mafine.analysis.metrics import (
    Header,
    MethodResult,
    MetricsDocument,
    as_document,
    method_label,
)
from mafine.atomic import write_text_atomic

REPORT_FILE = "report.md"
PLOTS_DIR = "plots"
REFERENCES = ("base", "majority", "debate")
FAKE_WARNING = (
    "These numbers come from the fake provider, an offline test double. "
    "They test the pipeline and are not research results."
)
STATISTICS_NOTE = (
    "Accuracy is the share of eval problems answered correctly; ±SE is the binomial standard "
    "error sqrt(p(1-p)/n); the 95% CI is a percentile bootstrap over problems "
    f"({stats.RESAMPLES:,} resamples, seed {stats.BOOTSTRAP_SEED}). A change is in percentage "
    "points against the base-model method of that column, on the same problems; p is the exact "
    "two-sided McNemar test on the problems where exactly one of the two is right."
)


TUNED_NOTE = (
    "Tuned: what the method fine-tuned (nothing: the base model only; one model: one model "
    "shared by every agent; every agent: each agent's own models)."
)


# Rows of the results table ----------------------------------------------------------------
@dataclass(frozen=True)
class ResultRow:
    """A method's row: its accuracy and its change against each base-model reference."""

    method: stats.MethodRow
    changes: dict[str, stats.ComparisonRow | None]


def result_rows(
    document: MetricsDocument,
    *,
    references: Sequence[str] = REFERENCES,
    resamples: int = stats.RESAMPLES,
) -> list[ResultRow]:
    """Methods in document order, each with accuracy stats and changes against the references
    present (a method is never compared with itself)."""
    methods = document.methods
    summaries = stats.summarize_methods(methods, resamples=resamples)
    present = [ref for ref in references if any(m.key == ref for m in methods)]
    by_reference: dict[str, dict[str, stats.ComparisonRow]] = {}
    for ref in present:
        reference = _reference(document, ref)
        rows = stats.compare(methods, reference.id, resamples=resamples)
        by_reference[ref] = {row.id: row for row in rows}
    return [
        ResultRow(
            method=summary,
            changes={
                ref: None
                if _not_after(summary, ref, present)
                else by_reference[ref].get(summary.id)
                for ref in present
            },
        )
        for summary in summaries
    ]


def _not_after(row: stats.MethodRow, reference: str, references: Sequence[str]) -> bool:
    """Base-model references are compared only with the ones after them (Debate vs Majority,
    not Majority vs Debate too): the table's upper triangle."""
    return (
        row.iteration == 0
        and row.key in references
        and references.index(row.key) <= references.index(reference)
    )


def _reference(document: MetricsDocument, key: str) -> MethodResult:
    """The reference method of a key: its lowest iteration (base models: iteration 0)."""
    candidates = [m for m in document.methods if m.key == key]
    return min(candidates, key=lambda m: m.iteration)


# Formatting -------------------------------------------------------------------------------
def pct(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{100 * value:.{digits}f}"


def signed(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{100 * value:+.{digits}f}"


def p_value(value: float) -> str:
    """p=0.035, p=0.65, p<0.001."""
    if value < 0.001:
        return "p<0.001"
    return f"p={value:.3f}" if value < 0.0995 else f"p={value:.2f}"


def interval(low: float | None, high: float | None, *, sign: bool = False) -> str:
    if low is None or high is None:
        return "—"
    fmt = signed if sign else pct
    return f"[{fmt(low)}, {fmt(high)}]"


def change_cell(change: stats.ComparisonRow | None) -> str:
    if change is None:
        return ""
    return f"{signed(change.diff)} ({p_value(change.p_value)})"


def method_name(row: stats.MethodRow) -> str:
    return f"{row.label}{' †' if row.uses_labels else ''}"


def iteration_name(iteration: int) -> str:
    return "base models" if iteration == 0 else str(iteration)


def header_lines(header: Header) -> list[str]:
    grader = header.grader
    settings = ", ".join(f"{k}={v}" for k, v in sorted(grader.items()) if k != "name")
    eval_data = header.eval_data or header.data
    transfer = "" if eval_data == header.data else " (zero-shot transfer)"
    return [
        f"- provider: **{header.provider}**, base model `{header.base_model}`",
        f"- grader: **{grader['name']}**{f' ({settings})' if settings else ''}",
        f"- train data: {header.data}, {header.train_size} problems",
        f"- eval data: {eval_data}, {header.eval_size} problems{transfer}",
        f"- agents: {header.agents} ({header.critics} with critics), {header.rounds} rounds, "
        f"summary {'on' if header.summarize else 'off'}; seed {header.seed}",
    ]


# Markdown ---------------------------------------------------------------------------------
def render_report(
    document: MetricsDocument | dict[str, Any],
    *,
    plots: Sequence[Path] = (),
    relative_to: Path | None = None,
    resamples: int = stats.RESAMPLES,
) -> str:
    """report.md: header, fake warning, the paper-style table, paired comparisons, per agent
    per round accuracy, diversity, plots (links relative to `relative_to`)."""
    document = as_document(document)
    header = document.header
    rows = result_rows(document, resamples=resamples)
    references = list(rows[0].changes) if rows else []
    lines = ["# mafine report", "", *header_lines(header), ""]
    if header.provider == "fake":
        lines += [f"> **Warning:** {FAKE_WARNING}", ""]
    lines += ["## Accuracy", ""]
    tuned = {m.id: m.what_was_tuned for m in document.methods}
    columns = ["method", "iteration", "tuned", "accuracy %", "±SE", "95% CI"]
    columns += [f"vs {ref.capitalize()}" for ref in references]
    lines += [_md_row(columns), _md_row(["---"] * 3 + ["---:"] * (len(columns) - 3))]
    for row in rows:
        m = row.method
        cells = [
            method_name(m),
            iteration_name(m.iteration),
            tuned[m.id],
            f"{pct(m.accuracy)} ({m.correct}/{m.n})",
            pct(m.se),
            interval(m.ci_low, m.ci_high),
            *(change_cell(row.changes[ref]) for ref in references),
        ]
        lines.append(_md_row(cells))
    lines += ["", TUNED_NOTE, "", STATISTICS_NOTE]
    if any(r.method.uses_labels for r in rows):
        lines += [
            "",
            "† uses the ground-truth answers of the train problems (a reference, "
            "not self-improvement).",
        ]
    lines += ["", *_paired_section(rows, references)]
    lines += _agent_round_section(document)
    lines += _diversity_section(document)
    lines += _plots_section(plots, relative_to)
    return "\n".join(lines).rstrip() + "\n"


def _paired_section(rows: Sequence[ResultRow], references: Sequence[str]) -> list[str]:
    if not references:
        return []
    lines = [
        "## Paired comparisons",
        "",
        "Difference in accuracy (points, method minus reference) with its paired bootstrap 95% "
        "CI; b: problems only the method answers right, c: only the reference; exact McNemar p.",
        "",
        _md_row(["method", "iteration", "reference", "diff", "95% CI", "b", "c", "p"]),
        _md_row(["---", "---", "---", "---:", "---:", "---:", "---:", "---:"]),
    ]
    for row in rows:
        for ref in references:
            change = row.changes[ref]
            if change is None:
                continue
            lines.append(
                _md_row(
                    [
                        method_name(row.method),
                        iteration_name(row.method.iteration),
                        ref.capitalize(),
                        signed(change.diff),
                        interval(change.ci_low, change.ci_high, sign=True),
                        str(change.only_method),
                        str(change.only_reference),
                        p_value(change.p_value).removeprefix("p=").removeprefix("p"),
                    ]
                )
            )
    return [*lines, ""]


def _agent_round_section(document: MetricsDocument) -> list[str]:
    table = document.per_agent_round
    if not table:
        return []
    rounds = sorted({r for agents in table.values() for a in agents.values() for r in a}, key=int)
    lines = [
        "## Accuracy per agent and round",
        "",
        "Each agent's own answer in each debate round (percent of eval problems).",
        "",
        _md_row(["method", "agent", *(f"round {r}" for r in rounds)]),
        _md_row(["---", "---:", *("---:" for _ in rounds)]),
    ]
    for name, agents in table.items():
        for agent in sorted(agents, key=int):
            cells = [pct(agents[agent].get(r)) for r in rounds]
            lines.append(_md_row([_id_label(document, name), agent, *cells]))
    return [*lines, ""]


def _diversity_section(document: MetricsDocument) -> list[str]:
    diversity = document.diversity
    if not diversity:
        return []
    entries = list(diversity.values())
    columns: list[tuple[str, str, Any]] = [
        ("round", "---:", lambda d: _opt(d.round)),
        ("problems", "---:", lambda d: _opt(d.problems)),
        ("consensus", "---:", lambda d: _fixed(d.consensus)),
    ]
    notes = [
        "Consensus: share of agents in the largest group of equivalent answers (1 = all agree)."
    ]
    if any(d.embedding_dissimilarity is not None for d in entries):
        columns.append(("embedding dissimilarity", "---:", _embedding_cell))
        notes.append(
            "Embedding dissimilarity: mean pairwise cosine distance between agents' responses."
        )
    if any(d.likelihood is not None for d in entries):
        columns += [
            ("cross NLL", "---:", lambda d: _fixed(cross_nll(d))),
            ("KL", "---:", lambda d: _fixed(d.likelihood.kl if d.likelihood else None)),
        ]
        notes.append(
            "Cross NLL: mean per-token negative log-likelihood of one agent's responses under "
            "another agent's model. KL: symmetric KL estimate between agents, nats per response."
        )
    lines = [
        "## Diversity",
        "",
        "On the eval debates' responses of one round. " + " ".join(notes),
        "",
        _md_row(["method", *(name for name, _, _ in columns)]),
        _md_row(["---", *(align for _, align, _ in columns)]),
    ]
    for name, d in diversity.items():
        lines.append(_md_row([_id_label(document, name), *(cell(d) for _, _, cell in columns)]))
    return [*lines, ""]


def _fixed(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def _embedding_cell(d: Diversity) -> str:
    if d.embedding_dissimilarity is None:
        return "—"
    return f"{d.embedding_dissimilarity:.3f}" + (f" ({d.embedder})" if d.embedder else "")


def _opt(value: object) -> str:
    return "—" if value is None else str(value)


def _plots_section(plots: Sequence[Path], relative_to: Path | None) -> list[str]:
    if not plots:
        return []
    lines = ["## Plots", ""]
    for plot in plots:
        target = plot
        if relative_to is not None:
            try:
                target = plot.relative_to(relative_to)
            except ValueError:
                target = Path(os.path.relpath(plot, relative_to))
        lines += [f"![{plot.stem.replace('_', ' ')}]({target.as_posix()})", ""]
    return lines


def method_cell(name: str, tuned: str) -> Text:
    """A terminal table's method cell: the name, and below it, dimmed, what it tuned (a line
    that rows with p-values have anyway, so the table grows no wider)."""
    return Text.assemble(name, "\n", (f"({tuned})", "dim"))


def display_name(label: str, iteration: int) -> str:
    """`Debate` for a base-model method, `Multiagent FT, iteration 2` for a tuned one."""
    return label if iteration == 0 else f"{label}, iteration {iteration}"


def _id_label(document: MetricsDocument, name: str) -> str:
    for method in document.methods:
        if method.id == name:
            return display_name(method.label, method.iteration)
    key, _, iteration = name.rpartition("@")
    if not key or not iteration.isdigit():
        return name
    return display_name(method_label(key), int(iteration))


def _md_row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"


# Terminal ---------------------------------------------------------------------------------
def results_table(
    document: MetricsDocument | dict[str, Any], *, resamples: int = stats.RESAMPLES
) -> Table:
    """The paper-style table for the terminal (numbers never wrap; labels may)."""
    document = as_document(document)
    header = document.header
    rows = result_rows(document, resamples=resamples)
    references = list(rows[0].changes) if rows else []
    table = Table(
        title=f"accuracy % on {header.eval_size} eval problems of "
        f"{header.eval_data or header.data} ({header.provider}: {header.base_model}, "
        f"grader {header.grader['name']})",
        caption="fake provider: these numbers are not research results"
        if header.provider == "fake"
        else "95% CI: bootstrap; change in points, p: exact McNemar",
    )
    table.add_column("method (tuned)", ratio=1, min_width=12)
    table.add_column("iter", justify="right", no_wrap=True)
    table.add_column("acc ±SE", justify="right", no_wrap=True)
    table.add_column("95% CI", justify="right", no_wrap=True)
    for ref in references:
        table.add_column(f"vs {ref.capitalize()}", justify="right", no_wrap=True)
    tuned = {m.id: m.what_was_tuned for m in document.methods}
    for row in rows:
        m = row.method
        changes = [row.changes[ref] for ref in references]
        table.add_row(
            method_cell(method_name(m), tuned[m.id]),
            str(m.iteration),
            f"{pct(m.accuracy)} ±{pct(m.se)}",
            f"{pct(m.ci_low)}–{pct(m.ci_high)}",
            *("" if c is None else f"{signed(c.diff)}\n{p_value(c.p_value)}" for c in changes),
        )
    return table


# Writing ----------------------------------------------------------------------------------
def write_report(
    document: MetricsDocument | dict[str, Any],
    root: Path,
    *,
    plots: bool = True,
    resamples: int = stats.RESAMPLES,
) -> Path:
    """Render report.md into `root` (a run directory), with PNG plots under `root/plots/` when
    matplotlib is installed (and `plots` is true). Returns the report's path."""
    document = as_document(document)
    images: list[Path] = []
    if plots:
        from mafine.analysis import plots as plotting

        if plotting.available():
            images = plotting.render_plots(document, root / PLOTS_DIR, resamples=resamples)
    text = render_report(document, plots=images, relative_to=root, resamples=resamples)
    path = root / REPORT_FILE
    write_text_atomic(path, text)
    return path
