"""LocalProvider: open models on this machine, one base in memory, a LoRA adapter per agent.

Importing this module does not import torch; constructing the provider does (after checking
that the `local` extra is installed) and loads the model on first use.
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib
import json
from collections.abc import Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console

from mafine import ui
from mafine.artifacts import Completion, Message, Usage
from mafine.atomic import write_text_atomic
from mafine.errors import MafineError
from mafine.providers.base import (
    Capabilities,
    GenerationRequest,
    ProviderBase,
    TuningSpec,
    TuningStatus,
)
from mafine.providers.local.batcher import Batcher
from mafine.providers.local.rows import GenResult, GenRow, ScoreRow
from mafine.providers.local.settings import LocalSettings
from mafine.seeds import local_row_seed

if TYPE_CHECKING:
    from mafine.providers.settings import ProviderConfig

EXTRA_MESSAGE = "the local provider needs the 'local' extra: pip install 'mafine[local]'"
JOB_FILE = "job.json"
DONE_FILE = "DONE.json"  # written last, atomically: the adapter is finished
ADAPTER_DIR = "adapter"  # inside TuningSpec.output_dir


def require_extra() -> None:
    """Raise the one-line MafineError naming the extra when torch, transformers or peft is
    missing."""
    for module in ("torch", "transformers", "peft"):
        try:
            importlib.import_module(module)
        except ImportError:
            raise MafineError(EXTRA_MESSAGE) from None


@dataclass
class LocalStats:
    """Counters for tests and benchmarks: how the work was batched."""

    generate_calls: int = 0
    generate_rows: int = 0
    score_calls: int = 0
    score_rows: int = 0
    trainings: int = 0


class LocalProvider(ProviderBase):
    """The Provider protocol on a local open model (transformers + peft)."""

    name = "local"
    capabilities = Capabilities(tuning=True, scoring=True)

    def __init__(
        self, config: ProviderConfig, seed: int, *, console: Console | None = None
    ) -> None:
        require_extra()
        settings = getattr(config, "local", None)
        if settings is None:
            settings = LocalSettings()
        elif not isinstance(settings, LocalSettings):
            settings = LocalSettings.model_validate(settings)
        self.settings: LocalSettings = settings
        self.model = config.model
        self.max_concurrency = config.max_concurrency
        self.seed = seed
        self.console = console or ui.console
        self.stats = LocalStats()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mafine-local")
        self._engine: Any = None  # loaded on first use, on the worker thread
        self._jobs: dict[str, TuningSpec] = {}
        window = settings.batch_window_ms / 1000
        self._generate_batches = Batcher(
            self._run_generate, self._executor, settings.batch_size, window
        )
        self._score_batches = Batcher(
            self._run_score, self._executor, settings.score_batch_size, window
        )

    # ----------------------------------------------------------------- generation

    async def generate(self, request: GenerationRequest) -> Completion:
        sampling = request.sampling
        row = GenRow(
            messages=tuple(request.messages),
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            max_output_tokens=sampling.max_output_tokens,
            seed=local_row_seed(request.key()),
        )
        size = sum(len(m.content) for m in request.messages)
        result: GenResult = await self._generate_batches.submit(request.model, row, size)
        return Completion(
            text=result.text,
            finish_reason=result.finish_reason,
            usage=Usage(
                prompt_tokens=result.prompt_tokens,
                output_tokens=result.output_tokens,
                total_tokens=result.prompt_tokens + result.output_tokens,
            ),
        )

    async def score(self, model: str, messages: Sequence[Message], response: str) -> list[float]:
        """Log-probabilities of `response`'s tokens as the assistant's reply to `messages`
        under `model` (the base model or an adapter), one float per response token."""
        size = sum(len(m.content) for m in messages) + len(response)
        return await self._score_batches.submit(model, ScoreRow(tuple(messages), response), size)

    def _engine_now(self):
        if self._engine is None:
            from mafine.providers.local.engine import Engine

            self._engine = Engine(self.model, self.settings, self.seed)
        return self._engine

    def _run_generate(self, model: Hashable, rows: list[GenRow]) -> list[GenResult]:
        results = self._engine_now().generate(str(model), rows)
        self.stats.generate_calls += 1
        self.stats.generate_rows += len(rows)
        return results

    def _run_score(self, model: Hashable, rows: list[ScoreRow]) -> list[list[float]]:
        results = self._engine_now().score(str(model), rows)
        self.stats.score_calls += 1
        self.stats.score_rows += len(rows)
        return results

    # ----------------------------------------------------------------- tuning

    def start_tuning(self, spec: TuningSpec) -> str:
        """Record the job in its output directory; training happens in poll_tuning."""
        out = Path(spec.output_dir)
        job = str(out)
        self._jobs[job] = spec
        if not (out / DONE_FILE).is_file():
            out.mkdir(parents=True, exist_ok=True)
            data = {
                f.name: str(v) if isinstance(v, Path) else v
                for f in dataclasses.fields(spec)
                for v in [getattr(spec, f.name)]
            }
            write_text_atomic(out / JOB_FILE, json.dumps(data, indent=2) + "\n")
        return job

    def poll_tuning(self, job_name: str) -> TuningStatus:
        """Train the adapter unless it is finished (blocking), then report it."""
        out = Path(job_name)
        if not (out / DONE_FILE).is_file():
            spec = self._jobs.get(job_name) or _read_job(out)
            if spec is None:
                return TuningStatus(
                    state="failed", error=f"unknown local tuning job {job_name}: no {JOB_FILE}"
                )
            from mafine.providers.local.training import BadTrainingData

            try:
                self._executor.submit(self._train, spec).result()
            except BadTrainingData as exc:
                return TuningStatus(state="failed", error=str(exc))
        adapter = out / ADAPTER_DIR
        if not (adapter / "adapter_config.json").is_file():
            return TuningStatus(
                state="failed", error=f"{out / DONE_FILE} exists but {adapter} holds no adapter"
            )
        return TuningStatus(state="succeeded", serving_model=str(adapter), checkpoint=str(adapter))

    def _train(self, spec: TuningSpec) -> None:
        from mafine.providers.local.training import train_adapter

        train_adapter(self._engine_now(), spec, self.seed, self.console)
        self.stats.trainings += 1

    async def aclose(self) -> None:
        """Free the model and stop the worker thread (after any batch in flight)."""
        await asyncio.to_thread(self.close)

    def close(self) -> None:
        """The same as aclose, for callers outside an event loop; safe to call twice."""
        engine, self._engine = self._engine, None
        if engine is not None:
            self._executor.submit(engine.close).result()
        self._executor.shutdown(wait=True)


def _read_job(out: Path) -> TuningSpec | None:
    path = out / JOB_FILE
    if not path.is_file():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    names = {f.name for f in dataclasses.fields(TuningSpec)}
    values = {k: v for k, v in data.items() if k in names}
    for key in ("training_file", "output_dir"):
        if key in values:
            values[key] = Path(values[key])
    return TuningSpec(**values)
