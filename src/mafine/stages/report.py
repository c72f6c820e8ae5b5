"""The results table, in the terminal and in report.md."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.table import Table

from mafine.ui import console

FAKE_WARNING = (
    "These numbers come from the fake provider, an offline test double: they test the "
    "pipeline and are not research results."
)


def _rows(document: dict[str, Any]) -> list[tuple[str, str, str]]:
    rows = []
    for method in document["methods"]:
        correct = method["correct"]
        accuracy = sum(correct) / len(correct) if correct else 0.0
        iteration = str(method["iteration"]) if method["iteration"] else ""
        rows.append((method["label"], iteration, f"{100 * accuracy:.1f}%"))
    return rows


def render_report(document: dict[str, Any], root: Path) -> str:
    head = document["header"]
    lines = [
        "# mafine report",
        "",
        f"- provider: **{head['provider']}**, base model `{head['base_model']}`",
        f"- data: {head['data']} ({head['train_size']} train), eval on {head['eval_data']} "
        f"({head['eval_size']} problems)",
        f"- grader: {head['grader']['name']}; seed {head['seed']}",
        "",
    ]
    if head["provider"] == "fake":
        lines += [f"> {FAKE_WARNING}", ""]
    lines += ["| method | iteration | accuracy |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in _rows(document)]
    return "\n".join(lines) + "\n"


def print_results(document: dict[str, Any]) -> None:
    head = document["header"]
    table = Table(
        title=f"accuracy on {head['eval_size']} eval problems "
        f"({head['provider']}: {head['base_model']}, grader {head['grader']['name']})"
    )
    for column in ("method", "iteration", "accuracy"):
        table.add_column(column, justify="left" if column == "method" else "right")
    for row in _rows(document):
        table.add_row(*row)
    console.print(table)
    if head["provider"] == "fake":
        console.print(f"[yellow]{FAKE_WARNING}[/]")
