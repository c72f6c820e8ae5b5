"""VllmProvider: the debates served by OpenAI-compatible vLLM servers, every agent model a
LoRA adapter of one base, loaded into the servers at runtime.

Requests go through the official `openai` SDK with the project's retry and pacing loop
(providers/retry.py); each carries mafine's per-request seed. The agent's model is chosen by
the request's `model` field: the base model (`provider.model`) is served by the run's
all-zero adapter, a tuned model (its adapter folder, named relative to the run directory) by
its own adapter, each under a name made from the run's id (adapters.served_name).
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mafine.artifacts import Completion, Message, Usage
from mafine.errors import MafineError
from mafine.providers.base import (
    Capabilities,
    GenerationRequest,
    ProviderBase,
    TuningSpec,
    TuningStatus,
)
from mafine.providers.limits import Limits, Pacer, classify
from mafine.providers.local.layout import ADAPTER_CONFIG, ADAPTER_DIR, in_run, run_relative
from mafine.providers.local.settings import LocalSettings
from mafine.providers.retry import AskAgain, Retrier, RetryPolicy, Tries
from mafine.providers.vllm import adapters, jobs
from mafine.providers.vllm.settings import VllmSettings
from mafine.seeds import local_row_seed
from mafine.ui import console

EXTRA_MESSAGE = "the vllm provider needs the 'vllm' extra: pip install 'mafine[vllm]'"
RELOADS = 2  # a request whose adapter vanished (server restarted) loads it again this often


def require_extra() -> None:
    try:
        import openai  # noqa: F401
    except ImportError:
        raise MafineError(EXTRA_MESSAGE) from None


class VllmProvider(ProviderBase):
    """The Provider protocol on vLLM servers (see the module docstring)."""

    name = "vllm"
    capabilities = Capabilities(tuning=True, scoring=True)

    def __init__(
        self,
        model: str,
        settings: VllmSettings,
        local: LocalSettings,
        *,
        max_concurrency: int = 16,
        run_dir: Path | None = None,
    ) -> None:
        require_extra()
        from mafine.providers.vllm.servers import open_servers

        self.model = model
        self.settings = settings
        self.local = local
        self.weights = settings.weights or model
        self.max_concurrency = max_concurrency
        self._scratch = None if run_dir is not None else tempfile.TemporaryDirectory()
        self.run_dir = Path(run_dir) if run_dir is not None else Path(self._scratch.name)
        self.state = self.run_dir / adapters.STATE_DIR
        self.run_id = adapters.run_id(self.state)
        self.servers = open_servers(settings)
        self.retrier = Retrier(RetryPolicy.of(settings), Pacer(Limits()), label="vllm")
        self.trainers = jobs.Trainers(settings.train_parallel, run_dir)
        self._jobs: dict[str, TuningSpec] = {}
        self._zero_lock = asyncio.Lock()

    # ----------------------------------------------------------------- adapters

    def served(self, model: str) -> str:
        """The LoRA name serving `model` on the servers."""
        return adapters.served_name(self.run_id, self._key(model))

    def _key(self, model: str) -> str:
        return adapters.ZERO_NAME if model == self.model else model

    async def _adapter_folder(self, model: str) -> Path:
        """The folder of `model`'s adapter (the zero adapter, written once, for the base)."""
        if model == self.model:
            target = self.state / adapters.ZERO_DIR
            if not (target / ADAPTER_CONFIG).is_file():
                async with self._zero_lock:
                    await asyncio.to_thread(
                        adapters.write_zero_adapter, self.weights, self.local, target
                    )
            return target
        folder = in_run(model, self.run_dir)
        if not (folder / ADAPTER_CONFIG).is_file():
            raise MafineError(
                f"unknown vllm model {model!r}: neither the base model ({self.model}) nor a "
                f"LoRA adapter folder (with {ADAPTER_CONFIG})"
            )
        return folder

    async def ensure_loaded(self, server: Any, model: str) -> str:
        """Load `model`'s adapter on `server` unless it has it; its served name."""
        name = self.served(model)
        if name not in server.loaded:
            folder = await self._adapter_folder(model)
            await server.load(name, adapters.server_path(folder, self.settings.path_map))
        return name

    def load_everywhere(self, model: str) -> None:
        """Load a tuned model's adapter on every server now (idempotent)."""
        folder = adapters.server_path(in_run(model, self.run_dir), self.settings.path_map)
        for server in self.servers:
            server.load_now(self.served(model), folder)

    # ----------------------------------------------------------------- requests

    async def _on_a_server(self, model: str, call: Any, tokens: int) -> Any:
        """`call(server, served_name)` on the least busy server, retried by error class; an
        adapter the server lost (restarted) is loaded again and the call asked again."""
        from openai import NotFoundError

        reloads = 0

        async def attempt() -> Any:
            nonlocal reloads
            from mafine.providers.vllm.servers import least_busy

            server = least_busy(self.servers)
            server.in_flight += 1
            try:
                name = await self.ensure_loaded(server, model)
                return await call(server, name)
            except NotFoundError:
                if reloads >= RELOADS:
                    raise
                reloads += 1
                server.forget(self.served(model))
                raise AskAgain() from None
            finally:
                server.in_flight -= 1

        try:
            return await self.retrier.run(attempt, Tries(), tokens)
        except MafineError:
            raise
        except Exception as exc:
            failure = classify(exc)
            raise MafineError(
                f"vLLM request for {model} failed ({failure.kind}): {_first_line(exc)}; "
                f"is the server at {self.settings.urls[0]} up (mafine check)?"
            ) from None

    async def generate(self, request: GenerationRequest) -> Completion:
        sampling = request.sampling
        messages = [{"role": m.role, "content": m.content} for m in request.messages]

        async def call(server: Any, name: str) -> Any:
            return await server.sdk.chat.completions.create(
                model=name,
                messages=messages,
                temperature=sampling.temperature,
                top_p=sampling.top_p,
                max_tokens=sampling.max_output_tokens,
                seed=local_row_seed(request.key()),
                n=1,
            )

        size = sum(len(m.content) for m in request.messages) // 4
        response = await self._on_a_server(request.model, call, size)
        choice = response.choices[0]
        usage = response.usage
        prompt = usage.prompt_tokens if usage else 0
        output = usage.completion_tokens if usage else 0
        return Completion(
            text=choice.message.content or "",
            finish_reason=choice.finish_reason,
            usage=Usage(prompt_tokens=prompt, output_tokens=output, total_tokens=prompt + output),
        )

    async def score(self, model: str, messages: Sequence[Message], response: str) -> list[float]:
        """Log-probabilities of `response`'s tokens as the reply to `messages`: the prompt is
        the chat template with the generation prompt, the response tokenized on its own (as
        the local provider scores), echoed back by /v1/completions with their logprobs."""
        if not response:
            return []
        conversation = [{"role": m.role, "content": m.content} for m in messages]

        async def call(server: Any, name: str) -> list[float]:
            from mafine.providers.vllm.servers import error_message, root_of

            root = root_of(server.url)
            asks = [
                {"model": name, "messages": conversation, "add_generation_prompt": True},
                {"model": name, "prompt": response, "add_special_tokens": False},
            ]
            tokens = []
            for ask in asks:
                answer = await server.control.post(f"{root}/tokenize", json=ask)
                if answer.status_code != 200:
                    raise MafineError(f"vLLM /tokenize failed: {error_message(answer)}")
                tokens.append(answer.json()["tokens"])
            prompt, reply = tokens
            async with server.scoring:
                done = await server.sdk.completions.create(
                    model=name,
                    prompt=prompt + reply,
                    max_tokens=1,
                    echo=True,
                    logprobs=0,
                    temperature=0.0,
                )
            values = done.choices[0].logprobs.token_logprobs
            return [float(v) for v in values[len(prompt) : len(prompt) + len(reply)]]

        size = (sum(len(m.content) for m in messages) + len(response)) // 4
        return await self._on_a_server(model, call, size)

    # ----------------------------------------------------------------- tuning

    def start_tuning(self, spec: TuningSpec) -> str:
        """Record the job (job.json, as the local trainer reads it) and queue its process;
        the job is named like a model, relative to the run directory."""
        out = Path(spec.output_dir)
        job = run_relative(out, self.run_dir)
        start = self.weights if spec.start_checkpoint == self.model else spec.start_checkpoint
        spec = TuningSpec(**{**spec.__dict__, "start_checkpoint": start})
        self._jobs[job] = spec
        jobs.record(spec, self.weights, self.local)
        return job

    def poll_tuning(self, job_name: str) -> TuningStatus:
        """The training process's state; a finished adapter is loaded on every server."""
        out = in_run(job_name, self.run_dir)
        state = self.trainers.state(out)
        if state == "running":
            return TuningStatus(state="running")
        if state == "failed":
            return TuningStatus(
                state="failed", error=f"training failed: {self.trainers.last_line(out)}"
            )
        adapter = out / ADAPTER_DIR
        name = run_relative(adapter, self.run_dir)
        console.print(f"vllm: loading adapter {name} as {self.served(name)}", highlight=False)
        self.load_everywhere(name)
        return TuningStatus(state="succeeded", serving_model=name, checkpoint=name)

    async def aclose(self) -> None:
        from mafine.providers.vllm.servers import close_servers

        self.trainers.stop()
        await close_servers(self.servers)
        if self._scratch is not None:
            self._scratch.cleanup()


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
