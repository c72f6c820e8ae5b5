"""`mafine sweep CONFIG --grid key=v1,v2 [--grid ...] [--seeds 0,1,2]`: a grid of runs.

Every point of the cartesian grid is one ordinary run of CONFIG with `--set key=value` for each
grid key, in its own run directory

    <run_dir of CONFIG>/sweep/<key=value,key=value,...>
    e.g. runs/smoke/sweep/agents.count=2,seed=0

(keys in the order given, `seed` last, each value as the config resolved it, so `1` and `1.0`
of a float key name one point; characters other than letters, digits and `.=,_+-` become `_`;
a name past 200 characters is cut and ends in `+` and a digest of the whole name). Two points
that resolve to one config are refused. A point whose run directory already holds a finished
run of the same config is skipped; others run (or resume) exactly as `mafine run` would. Then
one comparison of all points is written to `<run_dir of CONFIG>/sweep/comparison.md` (another
grid over the same base gets `comparison-2.md`, ...: see `comparison_file`). `--dry-run`
prints, for each point, the `mafine run ... --set ...` line that does the same thing by hand
(e.g. in a bash loop).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from mafine.config import PACE_KEYS, Config, config_dict, load_config
from mafine.errors import MafineError
from mafine.rundir import locate_relative_run
from mafine.ui import console

SWEEP_DIR = "sweep"
_UNSAFE = re.compile(r"[^A-Za-z0-9.=,_+\-]")
_MAX_NAME = 200  # characters of a point's folder name (file systems take 255 bytes, some fewer)


@dataclass(frozen=True)
class Point:
    assignments: tuple[tuple[str, str], ...]  # (dotted key, value as written)
    config: Config
    resolved: tuple[tuple[str, str], ...] = ()  # (dotted key, value the config resolved to)

    @property
    def name(self) -> str:
        return point_name(self.resolved or self.assignments)

    @property
    def run_dir(self) -> Path:
        assert self.config.run_dir is not None
        return self.config.run_dir

    def overrides(self) -> list[str]:
        return [f"{key}={value}" for key, value in self.assignments]


@dataclass
class PointResult:
    point: Point
    status: Literal["ran", "skipped", "failed"]
    error: str | None = None


@dataclass
class SweepResult:
    points: list[PointResult] = field(default_factory=list)
    comparison: Path | None = None

    @property
    def failed(self) -> list[PointResult]:
        return [p for p in self.points if p.status == "failed"]


# Planning ---------------------------------------------------------------------------------
def split_values(text: str) -> list[str]:
    """`a,b,[1, 2],"x,y"` -> ['a', 'b', '[1, 2]', '"x,y"']: commas inside brackets, braces or
    quotes do not split."""
    values: list[str] = []
    depth = 0
    quote: str | None = None
    current: list[str] = []
    for char in text:
        if quote:
            quote = None if char == quote else quote
        elif char in "\"'":
            quote = char
        elif char in "[{":
            depth += 1
        elif char in "]}":
            depth -= 1
        elif char == "," and depth == 0:
            values.append("".join(current).strip())
            current = []
            continue
        current.append(char)
    values.append("".join(current).strip())
    return values


def parse_grid(items: Sequence[str]) -> list[tuple[str, list[str]]]:
    """`key=v1,v2` items as (key, [values]); a key given twice is an error."""
    grid: list[tuple[str, list[str]]] = []
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key or not text.strip():
            raise MafineError(f"--grid expects key.path=value1,value2, got {item!r}")
        values = split_values(text)
        if any(not v for v in values):
            raise MafineError(f"--grid {key}: an empty value in {text!r}")
        if len(set(values)) != len(values):
            raise MafineError(f"--grid {key}: a value is repeated in {text!r}")
        if key == "run_dir":
            raise MafineError("--grid run_dir: the sweep chooses each point's run directory")
        if key in (k for k, _ in grid):
            raise MafineError(f"--grid {key} is given twice")
        grid.append((key, values))
    return grid


def point_name(assignments: Sequence[tuple[str, str]]) -> str:
    """The run directory name of a grid point: `key=value,key=value` (filesystem-safe)."""
    if not assignments:
        return "default"
    name = ",".join(f"{key}={_UNSAFE.sub('_', value)}" for key, value in assignments)
    if len(name) <= _MAX_NAME:
        return name
    # past what a file system takes for one name: a readable start and the whole name's digest
    digest = hashlib.sha256(name.encode()).hexdigest()[:16]
    return f"{name[: _MAX_NAME - len(digest) - 1]}+{digest}"


def plan(
    config_path: Path,
    grid: Sequence[str] = (),
    seeds: str | None = None,
    overrides: Sequence[str] = (),
) -> list[Point]:
    """Every grid point as a validated config (all are checked before anything runs)."""
    axes = parse_grid(grid)
    if seeds is not None:
        if any(key == "seed" for key, _ in axes):
            raise MafineError("give seeds either as --seeds or as --grid seed=..., not both")
        axes.append(("seed", parse_grid([f"seed={seeds}"])[0][1]))
    base = load_config(config_path, list(overrides))
    assert base.run_dir is not None
    root = base.run_dir / SWEEP_DIR
    # seed last, so runs that differ only in seed sit next to each other
    axes.sort(key=lambda axis: axis[0] == "seed")
    points: list[Point] = []
    seen: dict[str, Point] = {}
    for values in itertools.product(*(values for _, values in axes)):
        written = tuple((key, value) for (key, _), value in zip(axes, values, strict=True))
        settings = [f"{key}={value}" for key, value in written]
        config = load_config(config_path, [*overrides, *settings])
        # Points are named and compared by the values the config resolved to, so `1` and
        # `1.0` are one point (one run directory), never two runs paying twice.
        resolved = config_dict(config)
        named = tuple((key, _resolved_value(resolved, key, text)) for key, text in written)
        point = Point(
            written, config.model_copy(update={"run_dir": root / point_name(named)}), named
        )
        resolved.pop("run_dir", None)
        identity = json.dumps(resolved, sort_keys=True)
        if identity in seen:
            raise MafineError(
                f"sweep points {', '.join(settings)} and "
                f"{', '.join(seen[identity].overrides())} are the same config (their values "
                "read the same); give each value once"
            )
        seen[identity] = point
        points.append(point)
    for point in points:  # a relative run_dir: is this sweep's run elsewhere?
        locate_relative_run(point.config, config_path, announce=False)
    return points


def _resolved_value(resolved: dict[str, Any], key: str, written: str) -> str:
    """The value a dotted key resolved to, as text (`1.0` for `1` of a float key), or the
    value as written when the key is not a plain path of the config."""
    node: Any = resolved
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return written
        node = node[part]
    return node if isinstance(node, str) else json.dumps(node, ensure_ascii=False)


def run_command(config_path: Path, point: Point, overrides: Sequence[str] = ()) -> str:
    """The `mafine run` line that runs one point by hand (what a bash loop would do)."""
    parts = ["mafine", "run", str(config_path)]
    kept = [item for item in overrides if item.partition("=")[0].strip() != "run_dir"]
    for item in [*kept, *point.overrides(), f"run_dir={point.run_dir}"]:
        parts += ["--set", item]
    return shlex.join(parts)


# Running ----------------------------------------------------------------------------------
def is_finished(config: Config) -> bool:
    """Whether the config's run directory holds a finished run of exactly this config: its
    stored config is the same (iterations included), every recorded stage is done, and its
    metrics document is readable."""
    from mafine.analysis.metrics import load_metrics

    root = config.run_dir
    assert root is not None
    try:
        stored = yaml.safe_load((root / "config.yaml").read_text())
        manifest = json.loads((root / "manifest.json").read_text())
    except (OSError, yaml.YAMLError, json.JSONDecodeError):
        return False
    if stored != config_dict(config):
        return False
    stages = manifest.get("stages") or {}
    if not stages or any(stage.get("status") != "done" for stage in stages.values()):
        return False
    try:
        load_metrics(root / "metrics.json")
    except MafineError:
        return False
    return True


def run_one(config: Config) -> Any:
    """One run, exactly as `mafine run` does it."""
    from mafine.guard import run_async
    from mafine.pipeline import run_all
    from mafine.rundir import RunDir
    from mafine.stages.session import open_session

    with RunDir.open(config) as run:

        async def main() -> Any:
            async with open_session(run) as session:
                return await run_all(session)

        return run_async(main)


COMPARISONS_INDEX = "comparisons.json"


def comparison_file(sweep_dir: Path, names: Sequence[str]) -> Path:
    """Where a sweep of these points writes its comparison: `comparison.md` for the first
    sweep over a base config, the same file again for the same points, and a new
    `comparison-N.md` for another grid, so no sweep replaces another's comparison. The
    points of each file are kept in `comparisons.json`."""
    from mafine.analysis.compare import COMPARISON_FILE
    from mafine.jsonl import write_json

    index_path = sweep_dir / COMPARISONS_INDEX
    try:
        index = json.loads(index_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        index = {}
    if not isinstance(index, dict):
        index = {}
    points = sorted(names)
    for file_name, covered in index.items():
        if covered == points:
            return sweep_dir / file_name
    stem, suffix = Path(COMPARISON_FILE).stem, Path(COMPARISON_FILE).suffix
    candidates = (f"{stem}{'' if n == 1 else f'-{n}'}{suffix}" for n in itertools.count(1))
    taken = set(index)
    if (sweep_dir / COMPARISON_FILE).exists() and not index:
        taken.add(COMPARISON_FILE)  # written before this index existed: another sweep's
    file_name = next(name for name in candidates if name not in taken)
    index[file_name] = points
    write_json(index_path, index)
    return sweep_dir / file_name


def sweep(
    config_path: Path,
    grid: Sequence[str] = (),
    seeds: str | None = None,
    overrides: Sequence[str] = (),
    *,
    output: Path | None = None,
    dry_run: bool = False,
) -> SweepResult:
    """Run every point not yet finished, then write one comparison of all finished points."""
    from mafine.analysis.compare import comparison_table, write_comparison

    points = plan(config_path, grid, seeds, overrides)
    result = SweepResult()
    if dry_run:
        for point in points:
            console.print(run_command(config_path, point, overrides), markup=False)
        return result
    for number, point in enumerate(points, start=1):
        label = f"point {number}/{len(points)}: {point.name}"
        if is_finished(point.config):
            console.print(f"{label}: finished earlier, skipped ({point.run_dir})", markup=False)
            result.points.append(PointResult(point, "skipped"))
            continue
        console.rule(label)
        try:
            run_one(point.config)
        except MafineError as exc:
            console.print(f"{label} failed: {exc}")
            result.points.append(PointResult(point, "failed", str(exc)))
            continue
        result.points.append(PointResult(point, "ran"))
    finished = [p.point.run_dir for p in result.points if p.status != "failed"]
    if finished:
        target = output or comparison_file(finished[0].parent, [p.name for p in points])
        result.comparison, comparison = write_comparison(finished, target, pace_keys=PACE_KEYS)
        console.print(comparison_table(comparison))
        console.print(f"comparison: {result.comparison}", markup=False)
    return result
