"""PNG plots of a metrics document: accuracy per iteration, diversity per iteration.

Needs matplotlib (the `report` extra); it is imported lazily with the Agg backend, so plots
render without a display. `available()` says whether they can be drawn.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mafine.analysis import stats
from mafine.analysis.diversity import cross_nll
from mafine.analysis.metrics import method_label
from mafine.atomic import atomic_path
from mafine.errors import MafineError
from mafine.methods import METHODS

if TYPE_CHECKING:
    from mafine.analysis.metrics import MetricsDocument

REPORT_EXTRA = "pip install 'mafine[report]'"
ACCURACY_PNG = "accuracy.png"
DIVERSITY_PNG = "diversity.png"
DIVERSITY_METRICS = (  # metric, panel title, y axis label
    ("consensus", "Consensus", "share of agents agreeing with the majority"),
    ("embedding_dissimilarity", "Embedding dissimilarity", "mean pairwise cosine distance"),
    ("cross_nll", "Cross-agent NLL", "NLL under another agent (nats/token)"),
    ("kl", "Symmetric KL between agents", "KL estimate (nats/response)"),
)


def available() -> bool:
    return importlib.util.find_spec("matplotlib") is not None


def _pyplot() -> Any:
    if not available():
        raise MafineError(f"plots need matplotlib: {REPORT_EXTRA}")
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _colours(keys: Sequence[str]) -> dict[str, Any]:
    """Registered methods get stable colours, in registration order; others follow."""
    order = METHODS.names()
    ordered = sorted(keys, key=_order)
    palette = [
        "#4c72b0",
        "#dd8452",
        "#55a868",
        "#c44e52",
        "#8172b3",
        "#937860",
        "#da8bc3",
        "#8c8c8c",
        "#ccb974",
        "#64b5cd",
    ]
    fixed = {key: palette[index % len(palette)] for index, key in enumerate(order)}
    extra = iter(palette[len(order) :] + palette)
    return {key: fixed.get(key) or next(extra) for key in ordered}


def _order(key: str) -> tuple[int, str]:
    order = METHODS.names()
    return (order.index(key) if key in order else len(order), key)


def _subtitle(document: MetricsDocument) -> str:
    header = document.header
    eval_data = header.eval_data or header.data
    text = (
        f"{header.provider}: {header.base_model} · eval {eval_data}, n={header.eval_size} · "
        f"grader {header.grader['name']} · seed {header.seed}"
    )
    if header.provider == "fake":
        text += "\nfake provider: pipeline test, not research results"
    return text


def accuracy_plot(
    document: MetricsDocument, path: Path, *, resamples: int = stats.RESAMPLES
) -> Path:
    """Accuracy (%) per iteration per method, with 95% bootstrap CI error bars. Base-model
    methods (iteration 0) also run as dotted lines across the plot for reference."""
    plt = _pyplot()
    rows = stats.summarize_methods(document.methods, resamples=resamples)
    keys = list(dict.fromkeys(row.key for row in rows))
    colours = _colours(keys)
    iterations = sorted({row.iteration for row in rows})
    spread = 0.3 / max(1, len(keys) - 1)
    figure, axes = plt.subplots(figsize=(8.5, 5.0))
    for index, key in enumerate(keys):
        points = sorted((r for r in rows if r.key == key), key=lambda r: r.iteration)
        offset = (index - (len(keys) - 1) / 2) * spread
        xs = [r.iteration + offset for r in points]
        ys = [100 * r.accuracy for r in points]
        errors = [
            [100 * (r.accuracy - r.ci_low) for r in points],
            [100 * (r.ci_high - r.accuracy) for r in points],
        ]
        label = points[0].label + (" †" if points[0].uses_labels else "")
        axes.errorbar(
            xs,
            ys,
            yerr=errors,
            label=label,
            color=colours[key],
            marker="o",
            capsize=4,
            linestyle="-" if len(points) > 1 else "none",
            linewidth=1.6,
        )
        if len(points) == 1 and points[0].iteration == 0 and len(iterations) > 1:
            axes.axhline(ys[0], color=colours[key], linestyle=":", linewidth=1, alpha=0.7)
    axes.set_xticks(iterations)
    axes.set_xticklabels(["0\n(base models)" if i == 0 else str(i) for i in iterations])
    axes.set_xlim(min(iterations) - 0.5, max(iterations) + 0.5)
    axes.set_ylim(0, 105)
    axes.set_xlabel("fine-tuning iteration")
    axes.set_ylabel("accuracy on eval problems (%)")
    axes.set_title(
        f"Accuracy per iteration (error bars: 95% bootstrap CI)\n{_subtitle(document)}", fontsize=10
    )
    axes.grid(axis="y", alpha=0.3)
    axes.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=9, frameon=False)
    return _save(plt, figure, path)


def diversity_values(document: MetricsDocument) -> dict[str, dict[str, dict[int, float]]]:
    """metric -> method key -> iteration -> value, for the metrics that have any value."""
    table: dict[str, dict[str, dict[int, float]]] = {}
    for name, diversity in document.diversity.items():
        key, _, iteration_text = name.rpartition("@")
        if not key or not iteration_text.isdigit():
            continue
        iteration = int(iteration_text)
        values = {
            "consensus": diversity.consensus,
            "embedding_dissimilarity": diversity.embedding_dissimilarity,
            "cross_nll": cross_nll(diversity),
            "kl": diversity.likelihood.kl if diversity.likelihood else None,
        }
        for metric, value in values.items():
            if value is not None:
                table.setdefault(metric, {}).setdefault(key, {})[iteration] = value
    return table


def diversity_plot(document: MetricsDocument, path: Path) -> Path | None:
    """One panel per diversity metric with values: each tuned method's value per iteration,
    its line starting at iteration 0 from the base models (the debate of the base models,
    drawn as a black star). None when the document has no diversity."""
    table = diversity_values(document)
    metrics = [entry for entry in DIVERSITY_METRICS if entry[0] in table]
    if not metrics:
        return None
    plt = _pyplot()
    labels = {m.key: m.label for m in document.methods}
    keys = list(dict.fromkeys(k for metric, *_ in metrics for k in table[metric]))
    colours = _colours(keys)
    columns = min(2, len(metrics))
    rows = (len(metrics) + columns - 1) // columns
    figure, panels = plt.subplots(
        rows,
        columns,
        figsize=(5.2 * columns + 2.4, 3.9 * rows + 0.9),
        squeeze=False,
        constrained_layout=True,
    )
    legend: dict[str, Any] = {}
    for axes, (metric, title, ylabel) in zip(panels.flat, metrics, strict=False):
        series = table[metric]
        base = series.get("debate", {}).get(0)
        iterations: set[int] = set()
        for key in sorted(series, key=_order):
            values = series[key]
            if set(values) == {0}:
                continue  # base-model methods: drawn once, as the star below
            points = {0: base, **values} if base is not None and 0 not in values else values
            xs = sorted(points)
            iterations.update(xs)
            (line,) = axes.plot(
                xs,
                [points[x] for x in xs],
                marker="o",
                color=colours[key],
                label=labels.get(key) or method_label(key),
            )
            legend.setdefault(line.get_label(), line)
        if base is not None:
            (star,) = axes.plot(
                [0],
                [base],
                marker="*",
                markersize=13,
                color="black",
                linestyle="none",
                label="base models (iteration 0)",
                zorder=5,
            )
            legend.setdefault(star.get_label(), star)
            iterations.add(0)
        axes.set_title(title, fontsize=10)
        axes.set_xlabel("fine-tuning iteration (0: base models)")
        axes.set_ylabel(ylabel)
        axes.set_xticks(sorted(iterations))
        axes.grid(alpha=0.3)
        if metric == "consensus":
            axes.set_ylim(0, 1.05)
    for axes in list(panels.flat)[len(metrics) :]:
        axes.set_visible(False)
    figure.legend(
        list(legend.values()),
        list(legend),
        loc="outside right center",
        fontsize=9,
        frameon=False,
    )
    rounds = sorted({d.round for d in document.diversity.values() if d.round is not None})
    where = f", round {', '.join(map(str, rounds))}" if rounds else ""
    figure.suptitle(
        f"Diversity of agents' responses per iteration (eval debates{where})"
        f"\n{_subtitle(document)}",
        fontsize=10,
    )
    return _save(plt, figure, path)


def render_plots(
    document: MetricsDocument, directory: Path, *, resamples: int = stats.RESAMPLES
) -> list[Path]:
    """accuracy.png and (with diversity in the document) diversity.png in `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    written = [accuracy_plot(document, directory / ACCURACY_PNG, resamples=resamples)]
    diversity = diversity_plot(document, directory / DIVERSITY_PNG)
    if diversity is not None:
        written.append(diversity)
    return written


def _save(plt: Any, figure: Any, path: Path) -> Path:
    try:
        with atomic_path(path) as tmp:
            figure.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    finally:
        plt.close(figure)
    return path
