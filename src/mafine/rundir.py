"""The run directory: its layout, its lock, its stored config and its manifest."""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

import yaml

from mafine import provenance
from mafine.artifacts import Usage
from mafine.atomic import write_text_atomic
from mafine.config import Config, config_dict, config_differences
from mafine.errors import MafineError
from mafine.jsonl import write_json

CONFIG_FILE = "config.yaml"
MANIFEST_FILE = "manifest.json"
LOCK_FILE = ".lock"


def iteration_label(iteration: int) -> str:
    """An iteration's directory and stage-name prefix: `baseline` (0) or `iter-K`."""
    return "baseline" if iteration == 0 else f"iter-{iteration}"


@dataclass
class StageCounters:
    """What one stage sent: new requests (journal hits are free) and their tokens."""

    requests: int = 0
    cached: int = 0
    usage: Usage = field(default_factory=Usage)
    cost: dict[str, Any] = field(default_factory=dict)  # set when the stage ends (pricing)


class RunDir:
    """One experiment's directory. Open it with `RunDir.open(config)`; see docs/artifacts.md."""

    def __init__(self, root: Path, config: Config, lock: IO[str]) -> None:
        self.root = root
        self.config = config
        self._lock = lock

    # Layout -------------------------------------------------------------------------------
    def problems(self, split: str) -> Path:
        return self.root / "problems" / f"{split}.jsonl"

    @property
    def journal(self) -> Path:
        return self.root / "journal.jsonl"

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
        if root.exists() and not root.is_dir():
            raise MafineError(f"run directory {root} is a file")
        root.mkdir(parents=True, exist_ok=True)
        lock = _acquire_lock(root)
        try:
            run = cls(root, config, lock)
            run._check_and_store_config()
            run._init_manifest()
            yield run
        finally:
            lock.close()

    def _check_and_store_config(self) -> None:
        path = self.root / CONFIG_FILE
        current = config_dict(self.config)
        if path.exists():
            try:
                stored = yaml.safe_load(path.read_text()) or {}
            except yaml.YAMLError:
                raise MafineError(
                    f"{path} is not valid YAML; this run directory is damaged"
                ) from None
            differing = config_differences(stored, current)
            if differing:
                shown = ", ".join(differing[:6]) + (" ..." if len(differing) > 6 else "")
                raise MafineError(
                    f"run directory {self.root} was made with another config (differs in: "
                    f"{shown}); use another run_dir or --set run_dir=..."
                )
        write_text_atomic(path, yaml.safe_dump(current, sort_keys=False, allow_unicode=True))

    # Manifest -----------------------------------------------------------------------------
    def read_manifest(self) -> dict[str, Any]:
        path = self.root / MANIFEST_FILE
        if not path.exists():
            return {}
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError:
            raise MafineError(f"{path} is not valid JSON; this run directory is damaged") from None

    def _init_manifest(self) -> None:
        manifest = self.read_manifest()
        manifest.setdefault("created", _now())
        manifest.setdefault("stages", {})
        manifest["seed"] = self.config.seed
        manifest["provider"] = self.config.provider.name
        manifest.setdefault("invocations", []).append(provenance.describe())
        write_json(self.root / MANIFEST_FILE, manifest)

    def stage_status(self, name: str) -> str | None:
        return self.read_manifest().get("stages", {}).get(name, {}).get("status")

    @contextmanager
    def stage(self, name: str) -> Iterator[StageCounters]:
        """Record a stage's status, timing, requests and tokens in the manifest."""
        counters = StageCounters()
        started = time.monotonic()
        self._update_stage(name, {"status": "running", "started": _now()})
        status = "failed"
        try:
            yield counters
            status = "done"
        except KeyboardInterrupt:
            status = "interrupted"
            raise
        finally:
            from mafine.pricing import stage_cost

            counters.cost = stage_cost(self.config, counters.usage)
            self._update_stage(
                name,
                {
                    "status": status,
                    "finished": _now(),
                    "seconds": round(time.monotonic() - started, 3),
                    "requests": counters.requests,
                    "cached_responses": counters.cached,
                    "usage": counters.usage.model_dump(),
                    **counters.cost,
                },
            )

    def _update_stage(self, name: str, values: dict[str, Any]) -> None:
        manifest = self.read_manifest()
        entry = manifest.setdefault("stages", {}).setdefault(name, {})
        if values.get("status") == "running":
            entry.clear()
        entry.update(values)
        if "usage" in values:
            from mafine.pricing import usage_totals

            manifest["totals"] = usage_totals(manifest["stages"])
        write_json(self.root / MANIFEST_FILE, manifest)


def _acquire_lock(root: Path) -> IO[str]:
    handle = (root / LOCK_FILE).open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise MafineError(
            f"run directory {root} is in use by {holder}; wait for it to finish"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"mafine pid {os.getpid()}")
    handle.flush()
    return handle


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
