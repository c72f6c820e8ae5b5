"""`mafine report RUN [RUN...]`: finished runs side by side.

Runs are grouped by the config keys whose values differ between them (a sweep's grid), `seed`
aside: runs that differ only in `seed` form one group, and each of its numbers is the mean over
those seeds with the sample standard deviation and a 95% Student-t interval (see `stats`).
Keys that only pace a run (`run_dir`, concurrency, timeouts, polling: the caller's `pace_keys`)
never form groups.
"""

from __future__ import annotations

import json
import os
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from rich.table import Table

from mafine.analysis import stats
from mafine.analysis.metrics import METRICS_FILE, MetricsDocument, load_metrics
from mafine.analysis.report import (
    FAKE_WARNING,
    display_name,
    method_cell,
    p_value,
    pct,
    signed,
)
from mafine.atomic import write_text_atomic
from mafine.errors import MafineError
from mafine.outputs import exclusive

COMPARISON_FILE = "comparison.md"
SEED_KEY = "seed"
REFERENCE = "base"


@dataclass
class Run:
    root: Path
    document: MetricsDocument
    config: dict[str, Any]  # flattened: dotted key -> value

    @property
    def seed(self) -> Any:
        return self.config.get(SEED_KEY, self.document.header.seed)


@dataclass
class Group:
    """Runs with the same values of the differing keys (seeds aside)."""

    setting: dict[str, Any]
    runs: list[Run] = field(default_factory=list)

    @property
    def name(self) -> str:
        if not self.setting:
            return "all runs"
        return ", ".join(f"{key}={_show(value)}" for key, value in self.setting.items())

    @property
    def seeds(self) -> list[Any]:
        return [run.seed for run in self.runs]


@dataclass
class Cell:
    """One method in one group: accuracy over the group's seeds, and its change vs Base."""

    accuracy: stats.SeedAggregate
    change: stats.SeedAggregate | None
    single: stats.MethodRow | None  # with one run: its bootstrap interval
    single_change: stats.ComparisonRow | None


@dataclass
class Comparison:
    keys: list[str]  # the differing keys (seed included when it differs)
    groups: list[Group]
    methods: list[tuple[str, str]]  # (method id, label) in first-seen order
    tuned: dict[str, str]  # method id -> what it fine-tuned
    cells: dict[tuple[int, str], Cell]
    providers: list[str]


# Loading ----------------------------------------------------------------------------------
def load_run(path: Path) -> Run:
    """A run directory (or its metrics.json): the metrics document and the resolved config
    (config.yaml, else the document's header.config)."""
    root = path.parent if path.name == METRICS_FILE else path
    if not root.is_dir():
        raise MafineError(f"not a run directory: {path}")
    document = load_metrics(root / METRICS_FILE)
    config_file = root / "config.yaml"
    raw: Any = document.header.config
    if config_file.is_file():
        try:
            raw = yaml.safe_load(config_file.read_text()) or {}
        except yaml.YAMLError:
            raise MafineError(f"{config_file} is not valid YAML") from None
    if not isinstance(raw, dict):
        raise MafineError(f"{config_file}: the top level must be a mapping")
    return Run(root=root, document=document, config=flatten(raw))


def flatten(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings as dotted keys; lists become JSON text so they compare and print."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{dotted}."))
        elif isinstance(value, list):
            flat[dotted] = json.dumps(value)
        else:
            flat[dotted] = value
    return flat


def differing_keys(runs: Sequence[Run], pace_keys: Collection[str]) -> list[str]:
    """Config keys whose values are not the same in every run (`pace_keys` aside)."""
    keys = sorted({key for run in runs for key in run.config} - set(pace_keys))
    missing = object()
    return [
        key
        for key in keys
        if len({json.dumps(run.config.get(key, missing), default=str) for run in runs}) > 1
    ]


def group_runs(runs: Sequence[Run], pace_keys: Collection[str]) -> tuple[list[str], list[Group]]:
    """The differing keys, and the runs grouped by their values of those keys but `seed`."""
    keys = differing_keys(runs, pace_keys)
    setting_keys = [key for key in keys if key != SEED_KEY]
    groups: dict[str, Group] = {}
    for run in runs:
        setting = {key: run.config.get(key) for key in setting_keys}
        marker = json.dumps(setting, sort_keys=True, default=str)
        groups.setdefault(marker, Group(setting)).runs.append(run)
    return keys, list(groups.values())


# Computing --------------------------------------------------------------------------------
def compare_runs(
    runs: Sequence[Run], *, pace_keys: Collection[str], resamples: int = stats.RESAMPLES
) -> Comparison:
    """The runs grouped by the config keys that differ (`pace_keys`, which only pace a run,
    never form groups), each method's accuracy and change vs Base aggregated over seeds."""
    if not runs:
        raise MafineError("no runs to compare")
    keys, groups = group_runs(runs, pace_keys)
    methods: dict[str, str] = {}
    tuned: dict[str, str] = {}
    cells: dict[tuple[int, str], Cell] = {}
    for index, group in enumerate(groups):
        accuracies: list[dict[str, float]] = []
        changes: list[dict[str, float]] = []
        rows: dict[str, stats.MethodRow] = {}
        versus: dict[str, stats.ComparisonRow] = {}
        for run in group.runs:
            summary = stats.summarize_methods(run.document.methods, resamples=resamples)
            accuracies.append({row.id: row.accuracy for row in summary})
            rows = {row.id: row for row in summary}
            for row in summary:
                methods.setdefault(row.id, row.label)
            for method in run.document.methods:
                tuned.setdefault(method.id, method.what_was_tuned)
            base = [m for m in run.document.methods if m.key == REFERENCE]
            if base:
                reference = min(base, key=lambda m: m.iteration)
                compared = stats.compare(
                    run.document.methods,
                    stats.method_id(reference.key, reference.iteration),
                    resamples=resamples,
                )
                changes.append({row.id: row.diff for row in compared})
                versus = {row.id: row for row in compared}
        accuracy = stats.aggregate_runs(accuracies)
        change = stats.aggregate_runs(changes)
        single = len(group.runs) == 1
        for method in accuracy:
            cells[(index, method)] = Cell(
                accuracy=accuracy[method],
                change=change.get(method),
                single=rows.get(method) if single else None,
                single_change=versus.get(method) if single else None,
            )
    providers = sorted({run.document.header.provider for run in runs})
    return Comparison(keys, groups, list(methods.items()), tuned, cells, providers)


# Rendering --------------------------------------------------------------------------------
def _method_label(method: str, label: str) -> str:
    _, _, iteration = method.rpartition("@")
    return display_name(label, int(iteration)) if iteration.isdigit() else label


def accuracy_cell(cell: Cell | None, *, detailed: bool = False) -> str:
    if cell is None:
        return "—"
    agg = cell.accuracy
    if cell.single is not None:
        text = pct(agg.mean)
        if detailed:
            text += f" [{pct(cell.single.ci_low)}, {pct(cell.single.ci_high)}]"
        return text
    text = f"{pct(agg.mean)} ± {pct(agg.std)}"
    if detailed and agg.ci_low is not None and agg.ci_high is not None:
        # an accuracy lies in [0, 1]: the t-interval is shown clipped to it
        text += f" [{pct(max(0.0, agg.ci_low))}, {pct(min(1.0, agg.ci_high))}]"
    return f"{text} (n={agg.n})"


def change_cell(cell: Cell | None) -> str:
    if cell is None or cell.change is None:
        return "—"
    agg = cell.change
    if cell.single_change is not None:
        return f"{signed(agg.mean)} ({p_value(cell.single_change.p_value)})"
    return f"{signed(agg.mean)} ± {pct(agg.std)} (n={agg.n})"


def render_comparison(comparison: Comparison, *, relative_to: Path | None = None) -> str:
    groups = comparison.groups
    multi_seed = any(len(g.runs) > 1 for g in groups)
    lines = ["# mafine comparison", ""]
    if "fake" in comparison.providers:
        lines += [f"> **Warning:** {FAKE_WARNING}", ""]
    shown_keys = ", ".join(f"`{k}`" for k in comparison.keys) or "none (one setting)"
    lines += [f"Runs: {sum(len(g.runs) for g in groups)}; differing config keys: {shown_keys}.", ""]
    lines += ["| group | runs | seeds |", "| --- | --- | --- |"]
    for group in groups:
        where = ", ".join(_relative(run.root, relative_to) for run in group.runs)
        seeds = ", ".join(str(s) for s in group.seeds)
        lines.append(f"| {group.name} | {where} | {seeds} |")
    lines += ["", "## Accuracy (%)", ""]
    if multi_seed:
        lines += [
            "Several seeds: mean ± sample standard deviation over seeds, [95% Student-t "
            "interval over seeds, clipped to 0–100], (n seeds). One seed: accuracy [95% "
            "bootstrap interval over problems].",
            "",
        ]
    else:
        lines += ["Accuracy [95% bootstrap interval over problems].", ""]
    lines += _table(comparison, lambda cell: accuracy_cell(cell, detailed=True))
    lines += [
        "",
        "## Change against Base (points)",
        "",
        "Method minus the base model's single sample on the same problems; one seed: exact "
        "McNemar p; several seeds: mean ± sd of the per-seed changes.",
        "",
    ]
    lines += _table(comparison, change_cell, skip={REFERENCE})
    return "\n".join(lines).rstrip() + "\n"


def _table(comparison: Comparison, cell_text: Any, *, skip: Iterable[str] = ()) -> list[str]:
    skipped = set(skip)
    header = ["method", "tuned", *(g.name for g in comparison.groups)]
    lines = [_md_row(header), _md_row(["---", "---", *("---:" for _ in comparison.groups)])]
    for method, label in comparison.methods:
        if method.rpartition("@")[0] in skipped:
            continue
        cells = [
            cell_text(comparison.cells.get((i, method))) for i in range(len(comparison.groups))
        ]
        lines.append(_md_row([_method_label(method, label), comparison.tuned[method], *cells]))
    return lines


def comparison_table(comparison: Comparison) -> Table:
    """Side by side for the terminal: one column per group."""
    table = Table(
        title="accuracy % by setting"
        + (" (mean ± sd over seeds)" if any(len(g.runs) > 1 for g in comparison.groups) else ""),
        caption="fake provider: these numbers are not research results"
        if "fake" in comparison.providers
        else None,
    )
    table.add_column("method (tuned)", ratio=1, min_width=12)
    for group in comparison.groups:
        table.add_column(group.name.replace(", ", "\n"), justify="right")
    for method, label in comparison.methods:
        cells = [
            accuracy_cell(comparison.cells.get((i, method))) for i in range(len(comparison.groups))
        ]
        table.add_row(method_cell(_method_label(method, label), comparison.tuned[method]), *cells)
    return table


def default_output(roots: Sequence[Path]) -> Path:
    """One run: RUN/comparison.md; several: comparison.md in their common parent."""
    if len(roots) == 1:
        return roots[0] / COMPARISON_FILE
    common = Path(os.path.commonpath([str(r.resolve()) for r in roots]))
    return common / COMPARISON_FILE


def write_comparison(
    paths: Sequence[Path],
    output: Path | None = None,
    *,
    pace_keys: Collection[str],
    resamples: int = stats.RESAMPLES,
) -> tuple[Path, Comparison]:
    """Load the runs, compare them (`compare_runs`), write the markdown; returns its path and
    the comparison."""
    runs = [load_run(Path(p)) for p in paths]
    target = output or default_output([run.root for run in runs])
    with exclusive(target):  # two reports of other runs never swap their files
        comparison = compare_runs(runs, pace_keys=pace_keys, resamples=resamples)
        write_text_atomic(target, render_comparison(comparison, relative_to=target.parent))
    return target, comparison


def _relative(path: Path, base: Path | None) -> str:
    if base is None:
        return f"`{path}`"
    return f"`{os.path.relpath(path.resolve(), base.resolve())}`"


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return "null" if value is None else str(value)


def _md_row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"
