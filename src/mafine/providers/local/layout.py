"""Where the local provider keeps things on disk: one place for every file name it writes.

No torch here: the provider, the trainer and the engine all read these names.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

# In a tuning job's directory (TuningSpec.output_dir).
JOB_FILE = "job.json"  # the spec, so a new process can poll a job an earlier one started
DONE_FILE = "DONE.json"  # written last, atomically: the adapter is finished
ADAPTER_DIR = "adapter"  # peft's adapter_config.json + adapter_model.safetensors
LOG_FILE = "train_log.jsonl"  # one row per optimizer step
ADAPTER_CONFIG = "adapter_config.json"  # what makes a directory a LoRA adapter

# In the model cache (LocalSettings.model_cache_dir): one folder per GGUF file content.
GGUF_SUFFIX = ".gguf"
PACKAGE_PREFIX = "pkg:"  # pkg:<python package>/<file>.gguf, a GGUF file shipped in a package
SOURCE_FILE = "mafine_source.json"  # written last into a cached model: it is complete


def run_relative(path: Path, run_dir: Path | None) -> str:
    """How a model or job inside the run directory is named: relative to it, so journal keys,
    sampling seeds and models files do not depend on where the run lives."""
    if run_dir is not None:
        with contextlib.suppress(ValueError):
            return path.resolve().relative_to(run_dir.resolve()).as_posix()
    return str(path)


def in_run(name: str, run_dir: Path | None) -> Path:
    """The path a name from run_relative stands for."""
    path = Path(name)
    return run_dir / path if run_dir is not None and not path.is_absolute() else path
