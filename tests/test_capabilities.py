"""Providers declare what they can do; wrappers pass it through; callers read the declaration."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from mafine.analysis.diversity import GeminiEmbedder
from mafine.config import load_config
from mafine.errors import MafineError
from mafine.providers import open_provider
from mafine.providers.base import Capabilities, ProviderBase
from mafine.stages.evaluate import diversity_tools
from tests.conftest import write_config


def test_gemini_embedder_works_in_batch_mode(tmp_path: Path) -> None:
    """Probing for `.client` broke `evaluation.embedder: gemini` with batch mode: the batch
    wrapper had no client. Declared capabilities pass through the wrapper."""
    path = write_config(
        tmp_path, provider__gemini={"batch": True}, evaluation={"embedder": "gemini"}
    )
    config = load_config(path)

    async def tools() -> tuple[Capabilities, object]:
        async with open_provider(config.provider, config.seed, tmp_path) as provider:
            embedder, scorer = diversity_tools(config, provider)
            assert scorer is None  # the fake Gemini gives no token log-probabilities
            return provider.capabilities, embedder

    capabilities, embedder = asyncio.run(tools())
    assert capabilities == Capabilities(tuning=True, embedding=True, batch=True)
    assert capabilities == config.provider.capabilities  # what the registry declared up front
    assert isinstance(embedder, GeminiEmbedder)


def test_undeclared_capabilities_are_refused_by_name() -> None:
    class Plain(ProviderBase):
        name = "plain"

    plain = Plain()
    assert plain.capabilities == Capabilities()
    with pytest.raises(MafineError, match="provider plain cannot score text"):
        asyncio.run(plain.score("m", (), "x"))
    with pytest.raises(MafineError, match="provider plain has no embedding client"):
        plain.embedding_client()


def test_local_provider_declares_what_its_registry_entry_says(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from mafine.providers.local import LocalProvider

    config = load_config(write_config(tmp_path, provider={"name": "local"}))
    provider = LocalProvider(config.provider, config.seed)
    try:
        assert provider.capabilities == config.provider.capabilities
        assert provider.capabilities == Capabilities(tuning=True, scoring=True)
    finally:
        asyncio.run(provider.aclose())
