"""Every seed mafine derives, in one place.

Each derivation hashes a salt string and the values that identify one random stream (sha256 or
`random.Random`'s own string seeding: no PYTHONHASHSEED involved), so the same config and seed
give the same problems, data selection, votes and responses wherever the run directory lives.

The salt strings and the bit widths are part of the artifacts' identity: journals, data splits
and tie-breaks made by earlier versions depend on them, and `tests/test_seeds.py` pins their
values. Change one only with the intent of changing every run's results.
"""

from __future__ import annotations

import hashlib
import json
import random
from typing import Any


def _digest(material: str) -> bytes:
    return hashlib.sha256(material.encode()).digest()


def request_seed(run_seed: int, sample_index: int) -> int:
    """The per-request sampling seed (31 bits): fixed by the run seed and the sample index."""
    return int.from_bytes(_digest(f"mafine:{run_seed}:{sample_index}")[:4], "big") & 0x7FFFFFFF


def split_rng(seed: int) -> random.Random:
    """The generator that orders a data source's rows before the train/eval split."""
    return random.Random(f"mafine-split:{seed}")


def sft_rng(seed: int, iteration: int, agent: int) -> random.Random:
    """The generator that mixes one critic's corrected and kept examples in one iteration."""
    return random.Random(f"mafine-sft:{seed}:{iteration}:{agent}")


def vote_rng(
    seed: int, method: str, iteration: int, split: str, problem_id: str, vote: str = "final"
) -> random.Random:
    """The tie-breaking generator of one vote of one debate: fixed by the run seed, the method
    whose run holds the debate (`multiagent_ft` for the main run and its base-model debate, a
    compared method's name for its own), the iteration (0: base models), the split, the problem
    and which vote it is (`final`, or `round1` for the Majority baseline). Every rerun, regrade
    and report breaks the same tie the same way, and two debates never share a draw."""
    material = f"{seed}:{method}:{iteration}:{split}:{problem_id}:{vote}"
    return random.Random(f"mafine-vote-debate:{material}")


def deepmind_seed(module: str, difficulty: str, seed: int) -> int:
    """A 256-bit seed for one `mathematics-dataset` stream (module, difficulty, run seed)."""
    return int.from_bytes(_digest(f"mafine/deepmind/{module}/{difficulty}/{seed}"), "big")


def local_row_seed(key: str) -> int:
    """A 63-bit seed from a request's key (model, messages, sampling, sample index, seed):
    each local generation has its own random stream, whatever it is batched with."""
    return int.from_bytes(_digest(f"mafine-local:{key}")[:8], "big") >> 1


def tuning_seed(run_seed: int, iteration: int, agent: int, role: str) -> int:
    """The 31-bit training seed (LoRA initialisation, data order, dropout) of one agent model:
    fixed by the run seed and the model's role (iteration, agent, generator or critic), never
    by where the run directory lives (numpy, which transformers' set_seed seeds, takes
    seeds below 2**32)."""
    material = f"mafine-tune:{run_seed}:{iteration}:{agent}:{role}"
    return int.from_bytes(_digest(material)[:4], "big") & 0x7FFFFFFF


def fake_response_rng(model: str, request: Any) -> random.Random:
    """The fake Gemini's generator for one response: a pure function of the model and the
    request body (any JSON value; encoded with sorted keys)."""
    material = json.dumps({"model": model, "request": request}, sort_keys=True)
    return random.Random(int.from_bytes(_digest(material)[:16], "big"))


def unit_interval(material: str) -> float:
    """A number in [0, 1) that is a pure function of `material` (the fake's fault draws)."""
    return int.from_bytes(_digest(material)[:8], "big") / 2.0**64
