"""Every seed mafine derives, in one place."""

from __future__ import annotations

import hashlib


def tuning_seed(run_seed: int, iteration: int, agent: int, role: str) -> int:
    """A 31-bit training seed (numpy, which transformers' set_seed seeds, takes < 2**32) (LoRA initialisation, data order, dropout) for one agent model:
    fixed by the run seed and the model's role (iteration, agent, generator or critic), never
    by where the run directory lives."""
    material = f"mafine-tune:{run_seed}:{iteration}:{agent}:{role}"
    return int.from_bytes(hashlib.sha256(material.encode()).digest()[:4], "big") & 0x7FFFFFFF
