"""The run directory: its layout, its lock, its stored config and its manifest."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

import yaml

from mafine import attempts, provenance
from mafine.artifacts import Usage
from mafine.atomic import atomic_path, remove_stale, write_text_atomic
from mafine.config import Config, config_dict, config_differences
from mafine.config_checks import dump_yaml, parse_yaml
from mafine.errors import MafineError, StdoutClosed
from mafine.jsonl import write_json
from mafine.outputs import hold_lock
from mafine.readable import dangling_link

CONFIG_FILE = "config.yaml"
MANIFEST_FILE = "manifest.json"
LOCK_FILE = ".lock"
RUN_ID = "run_id"


def iteration_label(iteration: int) -> str:
    """An iteration's directory and stage-name prefix: `baseline` (0) or `iter-K`."""
    return "baseline" if iteration == 0 else f"iter-{iteration}"


@dataclass
class StageCounters:
    """What one stage sent: new requests (journal hits are free), requests sent but never
    answered (in flight past the grace period when the stage stopped), and their tokens."""

    requests: int = 0
    cached: int = 0
    unanswered: int = 0  # sent, but the stage stopped before the answer came
    usage: Usage = field(default_factory=Usage)
    cost: dict[str, Any] = field(default_factory=dict)  # set when the stage ends (pricing)


class RunDir:
    """One experiment's directory. Open it with `RunDir.open(config)`; see docs/artifacts.md."""

    def __init__(self, root: Path, config: Config, lock: IO[str]) -> None:
        self.root = root
        self.config = config
        self._lock = lock
        self._journal: Path | None = None
        self._recorded = False
        self._counted_in: RunDir | None = None  # the run whose totals include this one's

    # Layout -------------------------------------------------------------------------------
    def problems(self, split: str) -> Path:
        return self.root / "problems" / f"{split}.jsonl"

    @property
    def journal(self) -> Path:
        return self._journal or self.root / "journal.jsonl"

    def share_journal(self, path: Path) -> None:
        """Requests of this run go to another run's journal (a compared variant's do)."""
        self._journal = path

    def count_in(self, parent: RunDir) -> None:
        """This run's spend counts in `parent`'s totals too (a compared variant's does: the
        run paid for it)."""
        self._counted_in = parent

    def iteration_dir(self, iteration: int) -> Path:
        return self.root / iteration_label(iteration)

    def transcripts(self, iteration: int, split: str) -> Path:
        return self.iteration_dir(iteration) / f"{split}-debate.jsonl"

    def sft_dir(self, iteration: int) -> Path:
        return self.iteration_dir(iteration) / "sft"

    def sft_file(self, iteration: int, agent: int, role: str) -> Path:
        return self.sft_dir(iteration) / f"agent-{agent}-{role}.jsonl"

    def sft_counts(self, iteration: int) -> Path:
        return self.sft_dir(iteration) / "counts.jsonl"

    def models(self, iteration: int) -> Path:
        return self.iteration_dir(iteration) / "models.jsonl"

    def tuning_dir(self, iteration: int) -> Path:
        return self.iteration_dir(iteration) / "tuning"

    def metrics(self, iteration: int) -> Path:
        return self.iteration_dir(iteration) / "metrics.json"

    @property
    def report(self) -> Path:
        return self.root / "report.md"

    # Opening ------------------------------------------------------------------------------
    @classmethod
    @contextmanager
    def open(cls, config: Config) -> Iterator[RunDir]:
        """Lock the directory, check it belongs to this config, record provenance."""
        assert config.run_dir is not None
        root = config.run_dir
        _refuse_foreign_directory(root)
        root.mkdir(parents=True, exist_ok=True)
        lock = _acquire_lock(root)
        try:
            remove_stale(root)  # temporary files of writers killed mid-write
            run = cls(root, config, lock)
            run._check_config()
            run.read_manifest()  # a damaged manifest is refused before anything runs
            yield run
        finally:
            lock.close()

    def _check_config(self) -> None:
        path = self.root / CONFIG_FILE
        current = config_dict(self.config)
        if path.exists():
            stored = _read_document(path, "YAML", lambda text: parse_yaml(text) or {})
            _refuse_damaged_config(path, stored)
            differing = config_differences(stored, current)
            if differing:
                shown = ", ".join(differing[:6]) + (" ..." if len(differing) > 6 else "")
                raise MafineError(
                    f"run directory {self.root} was made with another config (differs in: "
                    f"{shown}); use another run_dir or --set run_dir=..."
                )

    def _record_invocation(self, manifest: dict[str, Any]) -> None:
        """Store the config and this invocation, once, when the first stage starts: a command
        that is refused or finds everything done leaves the directory as it was."""
        if self._recorded:
            return
        self._recorded = True
        path = self.root / CONFIG_FILE
        text = dump_yaml(config_dict(self.config))
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            write_text_atomic(path, text)
        manifest.setdefault("created", _now())
        # A run made before run ids named its tuning jobs after its folder: keep that name.
        legacy = bool(manifest.get("stages"))
        manifest.setdefault(RUN_ID, self.root.name if legacy else f"mafine-{uuid.uuid4().hex[:12]}")
        manifest.setdefault("stages", {})
        manifest["seed"] = self.config.seed
        manifest["provider"] = self.config.provider.name
        manifest.setdefault("invocations", []).append(provenance.describe())

    # Manifest -----------------------------------------------------------------------------
    @property
    def run_id(self) -> str:
        """The run's identity, stored in its manifest when its first stage starts: the same
        wherever the directory is moved or copied (Colab to Drive), so the jobs it created
        are found by it, never by the directory's path."""
        run_id = self.read_manifest().get(RUN_ID)
        if not isinstance(run_id, str) or not run_id:
            raise MafineError(
                f"{self.root / MANIFEST_FILE} has no {RUN_ID} (no stage has started yet)"
            )
        return run_id

    def read_manifest(self) -> dict[str, Any]:
        path = self.root / MANIFEST_FILE
        if not path.exists():
            return {}
        manifest = _read_document(path, "JSON", json.loads)
        stages = manifest.get("stages", {})
        if not isinstance(stages, dict) or not all(isinstance(v, dict) for v in stages.values()):
            raise MafineError(f"{path}: 'stages' is not a mapping of stage records; {_DAMAGED}")
        if not isinstance(manifest.get("invocations", []), list):
            raise MafineError(f"{path}: 'invocations' is not a list; {_DAMAGED}")
        return manifest

    def stage_status(self, name: str) -> str | None:
        return self.read_manifest().get("stages", {}).get(name, {}).get("status")

    @contextmanager
    def stage(self, name: str) -> Iterator[StageCounters]:
        """Record a stage's status, timing, requests and tokens in the manifest: the totals
        of every attempt (see mafine.attempts), so a resumed stage hides no spend."""
        counters = StageCounters()
        started = time.monotonic()
        untouched = None if self._recorded else self._snapshot()
        entry = self.read_manifest().get("stages", {}).get(name, {})
        earlier = attempts.earlier_attempts(entry, self.journal)
        self._update_stage(
            name,
            {
                "status": "running",
                "started": _now(),
                attempts.JOURNAL_OFFSET: attempts.log_size(self.journal),
                attempts.SENT_OFFSET: attempts.log_size(attempts.sent_log(self.journal)),
                attempts.EARLIER: earlier.as_dict(),
            },
        )
        status = "failed"
        try:
            yield counters
            status = "done"
        except (KeyboardInterrupt, asyncio.CancelledError, StdoutClosed, BrokenPipeError):
            status = "interrupted"
            raise
        finally:
            from mafine.pricing import stage_cost

            usage = earlier.usage + counters.usage
            counters.cost = stage_cost(self.config, counters.usage)
            if status == "failed" and counters.requests == 0 and untouched is not None:
                # refused before anything was spent: leave the directory as it was
                self._restore(untouched)
            else:
                self._update_stage(
                    name,
                    {
                        "status": status,
                        "finished": _now(),
                        "seconds": round(time.monotonic() - started, 3),
                        "attempts": earlier.attempts + 1,
                        "requests": earlier.requests + counters.requests,
                        "cached_responses": earlier.cached + counters.cached,
                        "unanswered_requests": earlier.unanswered + counters.unanswered,
                        "usage": usage.model_dump(),
                        **stage_cost(self.config, usage),
                    },
                )

    def _snapshot(self) -> dict[Path, bytes | None]:
        """The bytes of the files recording an invocation, before this one touches them."""
        paths = (self.root / CONFIG_FILE, self.root / MANIFEST_FILE)
        return {path: path.read_bytes() if path.exists() else None for path in paths}

    def _restore(self, snapshot: dict[Path, bytes | None]) -> None:
        for path, data in snapshot.items():
            if data is None:
                path.unlink(missing_ok=True)
            elif not path.exists() or path.read_bytes() != data:
                with atomic_path(path) as tmp:
                    tmp.write_bytes(data)
        self._recorded = False

    def _update_stage(self, name: str, values: dict[str, Any]) -> None:
        manifest = self.read_manifest()
        self._record_invocation(manifest)
        entry = manifest.setdefault("stages", {}).setdefault(name, {})
        if values.get("status") == "running":
            entry.clear()
        entry.update(values)
        if "usage" in values:
            manifest["totals"] = self._totals(manifest)
        write_json(self.root / MANIFEST_FILE, manifest)
        if "usage" in values and self._counted_in is not None:
            self._counted_in.refresh_totals()

    def refresh_totals(self) -> None:
        """Recompute the manifest's totals (after a compared variant's stage ended)."""
        manifest = self.read_manifest()
        if "stages" in manifest:
            manifest["totals"] = self._totals(manifest)
            write_json(self.root / MANIFEST_FILE, manifest)

    def _totals(self, manifest: dict[str, Any]) -> dict[str, Any]:
        """Requests, tokens and cost per iteration and for the whole run: `run` counts every
        stage of the compared variants too (`variants/<name>/<stage>`), whose spend the run
        paid for; the iterations' totals are the run's own stages."""
        from mafine.pricing import usage_totals

        stages = dict(manifest.get("stages", {}))
        totals = usage_totals(stages)
        variants = {}
        for name in self.config.evaluation.compare:
            path = self.root / "variants" / name / MANIFEST_FILE
            if path.exists():
                recorded = _read_document(path, "JSON", json.loads).get("stages", {})
                variants.update({f"variants/{name}/{k}": v for k, v in recorded.items()})
        if variants:
            totals["run"] = usage_totals({**stages, **variants})["run"]
            totals["variants"] = usage_totals(variants)["run"]
        return totals


def locate_relative_run(config: Config, config_file: Path, announce: bool = True) -> None:
    """A relative `run_dir` is relative to the working directory (as `runs/<stem>` is). The
    same command from another directory would start a new run there and pay again: when a
    run of this config already lives at `run_dir` beside the config file or one of its parent
    folders, refuse and say where it is and how to continue it. A new run says where it is."""
    run_dir = config.run_dir
    if run_dir is None or run_dir.is_absolute() or (run_dir / CONFIG_FILE).exists():
        return
    here = run_dir.resolve()
    folder = config_file.resolve().parent
    for base in (folder, *folder.parents):
        candidate = base / run_dir
        if candidate.resolve() == here or not (candidate / CONFIG_FILE).is_file():
            continue
        try:
            stored = yaml.safe_load((candidate / CONFIG_FILE).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            continue
        if isinstance(stored, dict) and not config_differences(stored, config_dict(config)):
            raise MafineError(
                f"run_dir {run_dir} is relative to the working directory, so this would start "
                f"a new run in {here}, but this config's run is in {candidate}: run the command "
                f"from {base}, or add --set run_dir={candidate} to continue it (an absolute "
                "run_dir starts a new run wherever you are)"
            )
    if announce and not here.exists():
        from mafine.ui import console

        console.print(f"new run directory: {here}", markup=False)


_DAMAGED = "this run directory is damaged: restore the file or use another run_dir"
_RUN_FILES = {CONFIG_FILE, MANIFEST_FILE, LOCK_FILE}


def _read_document(path: Path, kind: str, parse: Any) -> dict[str, Any]:
    """A run directory's YAML or JSON mapping; bad bytes, syntax or shape name the file."""
    try:
        data = parse(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise MafineError(f"{path}: not UTF-8 text (byte {exc.start}); {_DAMAGED}") from None
    except (yaml.YAMLError, json.JSONDecodeError):
        raise MafineError(f"{path} is not valid {kind}; {_DAMAGED}") from None
    if not isinstance(data, dict):
        raise MafineError(f"{path}: expected a mapping, found {type(data).__name__}; {_DAMAGED}")
    return data


_RESTORE_CONFIG = (
    "restore it from a copy, or, if this run was made with the config you are giving now, "
    "delete it and run the same command again (it is written anew)"
)


def _refuse_damaged_config(path: Path, stored: dict[str, Any]) -> None:
    """A stored config that is no valid config (cut short, edited by hand) is called damaged,
    not "another config": the way on is to restore it, or to let the run store it again."""
    from pydantic import ValidationError

    from mafine.schema import describe_validation_error

    try:
        Config.model_validate(stored)
    except ValidationError as exc:
        raise MafineError(
            f"{path} is damaged or from another mafine version "
            f"({describe_validation_error(exc)}); {_RESTORE_CONFIG}"
        ) from None
    missing = [key for key in Config.model_fields if key not in stored]
    if missing:
        raise MafineError(f"{path} is damaged (no {', '.join(missing[:4])}); {_RESTORE_CONFIG}")


def _refuse_foreign_directory(root: Path) -> None:
    """A run directory is new, empty, or a mafine run: never someone else's files."""
    if not root.exists() and (link := dangling_link(root)):
        raise MafineError(
            f"run directory {root}: {link}; create the link's target directory, or set run_dir "
            "to another path"
        )
    if root.exists() and not root.is_dir():
        raise MafineError(f"run directory {root} is a file; set run_dir to a directory")
    if not root.is_dir() or (root / CONFIG_FILE).exists() or _locked_by_mafine(root):
        return
    foreign = sorted(p.name for p in root.iterdir() if p.name not in _RUN_FILES)
    if foreign:
        raise MafineError(
            f"run directory {root} holds other files ({', '.join(foreign[:3])}"
            f"{' ...' if len(foreign) > 3 else ''}) and is not a mafine run; set run_dir to a "
            "new or empty directory"
        )


def _locked_by_mafine(root: Path) -> bool:
    """Whether mafine has opened this directory before (its lock file says so)."""
    lock = root / LOCK_FILE
    try:
        return lock.is_file() and lock.read_bytes().startswith(b"mafine pid")
    except OSError:
        return False


def _acquire_lock(root: Path) -> IO[str]:
    return hold_lock(
        root / LOCK_FILE,
        lambda holder: f"run directory {root} is in use by {holder}; wait for it to finish",
    )


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
