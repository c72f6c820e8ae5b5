"""How the registry opens the vllm provider (`ProviderEntry.open`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mafine.providers import closing


def _make(config: Any, seed: int, state_dir: Path | None) -> Any:
    from mafine.providers.vllm.provider import VllmProvider, require_extra

    require_extra()
    from mafine.providers.vllm.servers import require_serving

    require_serving(config.settings_of("vllm"), config.model)
    return VllmProvider(
        config.model,
        config.settings_of("vllm"),
        config.local,
        max_concurrency=config.max_concurrency,
        run_dir=state_dir,
    )


open_vllm = closing(_make)
