"""`make bench`: run every benchmark and write their figures into docs/benchmarks.md.

Each `bench_*.py` prints its figures (markdown) to stdout; this script runs each in its own
process and records the output with the command that produced it and the machine it ran on.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUTPUT = HERE.parent / "docs" / "benchmarks.md"


def main() -> None:
    only = set(sys.argv[1:])
    sections = []
    for script in sorted(HERE.glob("bench_*.py")):
        if only and script.stem not in only:
            continue
        command = f"python benchmarks/{script.name}"
        print(f"== {command}", flush=True)
        result = subprocess.run(
            [sys.executable, str(script)], capture_output=True, text=True, cwd=HERE.parent
        )
        output = result.stdout.strip() or "(no output)"
        if result.returncode != 0:
            output += f"\n\nFAILED (exit {result.returncode}):\n{result.stderr.strip()[-2000:]}"
        print(output, flush=True)
        doc = (script.read_text().split('"""')[1].strip().splitlines() or [""])[0]
        sections.append(f"## {script.stem}\n\n{doc}\n\nCommand: `{command}`\n\n{output}\n")
    header = (
        "# Benchmarks\n\n"
        f"Written by `make bench` on {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, "
        f"{platform.machine()} with {os.cpu_count()} cores, Python {platform.python_version()}. "
        "Every figure comes from the fake provider, a tiny local model or SmolLM2-135M on the "
        "CPU: they measure mafine's speed and memory, not any model's accuracy (real runs' "
        "accuracy is in docs/results.md).\n"
    )
    OUTPUT.write_text("\n".join([header, *sections]))
    print(f"wrote {OUTPUT}")


if __name__ == "__main__":
    main()
