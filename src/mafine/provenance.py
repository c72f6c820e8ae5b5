"""What a run records about how it was made: versions, git revision, command line, host."""

from __future__ import annotations

import platform
import subprocess
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import mafine

PACKAGES = (
    "google-genai",
    "pydantic",
    "datasets",
    "mathematics-dataset",
    "numpy",
    "sympy",
    "math-verify",
    "torch",
    "transformers",
    "peft",
    "google-cloud-storage",
)


def describe() -> dict[str, object]:
    return {
        "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "argv": _argv(),
        "mafine": mafine.__version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "git_revision": git_revision(),
        "packages": package_versions(),
    }


def package_versions() -> dict[str, str]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def git_revision() -> str | None:
    """The revision of the mafine checkout (with `+dirty` for local changes), if any."""
    source = Path(mafine.__file__).resolve().parent
    try:
        revision = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=source, capture_output=True, text=True, timeout=5
        )
        if revision.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=source,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return revision.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def _argv() -> list[str]:
    """The command line, with `--set` values of secret-looking keys masked."""
    masked = []
    for arg in sys.argv:
        key = arg.partition("=")[0].lower()
        if "=" in arg and any(word in key for word in ("key", "token", "secret", "password")):
            arg = f"{arg.partition('=')[0]}=***"
        masked.append(arg)
    return masked
