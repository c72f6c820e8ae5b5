"""Shared fixtures: small configs in a temporary directory and a CLI runner that captures
every in-process fake Gemini a command starts, so tests can count the requests it got."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner, Result

from mafine.cli import app

SMOKE = Path(__file__).resolve().parent.parent / "configs" / "smoke.yaml"


def write_config(directory: Path, name: str = "exp", **changes: Any) -> Path:
    """The smoke config, made smaller, with `a__b=value` keyword changes. Embedding
    dissimilarity is off unless a test asks for it (tests/test_methods.py does)."""
    raw = yaml.safe_load(SMOKE.read_text())
    raw["data"]["train_size"] = 12
    raw["data"]["eval_size"] = 6
    raw["iterations"] = 1
    raw["run_dir"] = str(directory / "runs" / name)
    raw["evaluation"] = {"embedder": "none"}  # loading the embedding model is slow; see below
    for dotted, value in changes.items():
        node = raw
        parts = dotted.split("__")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


@dataclass
class FakeTraffic:
    """The fakes that commands started, kept after they stopped."""

    servers: list[Any] = field(default_factory=list)

    def generate_requests(self) -> int:
        return sum(server.stats()["by_kind"].get("generate", 0) for server in self.servers)

    def requests(self) -> int:
        return sum(server.stats()["requests"] for server in self.servers)


@pytest.fixture
def traffic(monkeypatch: pytest.MonkeyPatch) -> FakeTraffic:
    from mafine.providers.fake_gemini import server

    seen = FakeTraffic()
    original = server.FakeGemini.start

    def start(self: Any) -> Any:
        seen.servers.append(self)
        return original(self)

    monkeypatch.setattr(server.FakeGemini, "start", start)
    return seen


@pytest.fixture
def cli() -> Callable[..., Result]:
    runner = CliRunner()

    def invoke(*args: str) -> Result:
        return runner.invoke(app, [str(a) for a in args], catch_exceptions=True)

    return invoke


@pytest.fixture
def config_path(tmp_path: Path) -> Iterator[Path]:
    yield write_config(tmp_path)


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """The config of one finished run on the fake (every stage), made once per test module
    that asks; tests that change it work on `copy`."""
    from tests.hostile import small_config

    config = small_config(tmp_path_factory.mktemp("finished"), "done")
    result = CliRunner().invoke(app, ["run", str(config)])
    assert result.exit_code == 0, result.output
    return config


@pytest.fixture
def copy(finished: Path, tmp_path: Path) -> Path:
    """A copy of `finished`'s run (config and run directory) of the test's own."""
    from tests.hostile import copy_run

    return copy_run(finished, tmp_path)
