"""Training jobs of the vllm provider: each agent model's adapter is trained by the local
provider's TRL trainer (`mafine.providers.local.train_job`) in its own process, up to
`provider.vllm.train_parallel` at once (one per GPU when there are GPUs).

A job is recorded (job.json) before it is launched, and its process id beside it, so a
mafine killed and started again polls the process still training, or starts it again when
it died; a finished adapter (DONE.json) is never trained again.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

from mafine.atomic import write_text_atomic
from mafine.providers.base import TuningSpec
from mafine.providers.local.layout import DONE_FILE, JOB_FILE
from mafine.providers.local.settings import LocalSettings

PID_FILE = "train.pid"
LOG = "train.log"


def record(spec: TuningSpec, weights: str, settings: LocalSettings) -> None:
    """Write the job's job.json (the local trainer's format) unless it is finished."""
    out = Path(spec.output_dir)
    if (out / DONE_FILE).is_file():
        return
    out.mkdir(parents=True, exist_ok=True)
    data = {
        f.name: str(v) if isinstance(v, Path) else v
        for f in dataclasses.fields(spec)
        for v in [getattr(spec, f.name)]
    }
    data["base_model"] = weights
    data["local_settings"] = settings.model_dump(mode="json")
    write_text_atomic(out / JOB_FILE, json.dumps(data, indent=2) + "\n")


class Trainers:
    """The training processes of one provider: launched in order, `parallel` at a time."""

    def __init__(self, parallel: int, run_dir: Path | None) -> None:
        self.parallel = parallel
        self.run_dir = run_dir
        self.queue: list[Path] = []
        self.running: dict[Path, subprocess.Popen] = {}
        self.failed: set[Path] = set()

    def state(self, out: Path) -> str:
        """running, done, or failed (see train.log); launches queued jobs as slots free."""
        self._reap()
        if (out / DONE_FILE).is_file():
            return "done"
        if out in self.failed:
            self.failed.discard(out)
            return "failed"
        if out not in self.running and out not in self.queue and not _alive(out):
            self.queue.append(out)  # new, or its process died with an earlier mafine
        self._launch()
        return "running"

    def _reap(self) -> None:
        for out, process in list(self.running.items()):
            if process.poll() is not None:
                del self.running[out]
                if not (out / DONE_FILE).is_file():
                    self.failed.add(out)

    def _launch(self) -> None:
        while self.queue and len(self.running) < self.parallel:
            out = self.queue.pop(0)
            if _alive(out) or (out / DONE_FILE).is_file():
                continue
            slot = len(self.running)
            command = [sys.executable, "-m", "mafine.providers.local.train_job", str(out)]
            if self.run_dir is not None:
                command += ["--run-dir", str(self.run_dir)]
            env = dict(os.environ)
            devices = os.environ.get("CUDA_VISIBLE_DEVICES")
            if self.parallel > 1:
                listed = devices.split(",") if devices else [str(i) for i in range(self.parallel)]
                env["CUDA_VISIBLE_DEVICES"] = listed[slot % len(listed)]
            with (out / LOG).open("ab") as log:
                process = subprocess.Popen(
                    command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
                )
            write_text_atomic(out / PID_FILE, f"{process.pid}\n")
            self.running[out] = process

    def last_line(self, out: Path) -> str:
        try:
            lines = (out / LOG).read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            return "no training log"
        lines = [line for line in lines if line.strip()]
        return lines[-1].strip() if lines else "no output"

    def stop(self) -> None:
        """Leave running trainers alone (a resumed run polls them); drop the handles."""
        self.running.clear()


def _alive(out: Path) -> bool:
    """A training process recorded for `out` still runs (its command line names `out`)."""
    try:
        pid = int((out / PID_FILE).read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except (OSError, ValueError):
        return False
    return str(out) in cmdline and "train_job" in cmdline
