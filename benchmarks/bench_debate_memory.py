"""Peak memory of `mafine debate` against the fake on 100 and on 1,000 problems.

Memory should follow concurrency, not data size: transcripts stream to disk as they finish
and the journal keeps only byte offsets in memory. Each size runs in a fresh process.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
SIZES = (100, 1000)


def debate_peak_rss(directory: Path, problems: int) -> tuple[float, float]:
    """(peak resident memory in MiB, seconds) of prepare + debate on `problems` problems."""
    raw = yaml.safe_load((ROOT / "configs" / "smoke.yaml").read_text())
    raw["data"]["train_size"] = problems
    raw["data"]["eval_size"] = 10
    raw["run_dir"] = str(directory / f"run-{problems}")
    config = directory / f"bench-{problems}.yaml"
    config.write_text(yaml.safe_dump(raw))
    mafine = [sys.executable, "-m", "mafine"]
    subprocess.run([*mafine, "prepare", str(config)], check=True, capture_output=True)
    started = time.perf_counter()
    child = subprocess.Popen(
        [*mafine, "debate", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    _, status, usage = os.wait4(child.pid, 0)
    elapsed = time.perf_counter() - started
    if status != 0:
        raise SystemExit(f"debate failed: {child.stderr.read().decode() if child.stderr else ''}")
    return usage.ru_maxrss / 1024, elapsed


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        results = {size: debate_peak_rss(Path(tmp), size) for size in SIZES}
    print("| problems | requests | peak RSS (MiB) | seconds |")
    print("|---|---|---|---|")
    for size, (rss, seconds) in results.items():
        print(f"| {size} | {size * 9} | {rss:.1f} | {seconds:.1f} |")
    ratio = results[SIZES[1]][0] / results[SIZES[0]][0]
    verdict = "within" if ratio <= 1.5 else "OVER"
    print(f"\npeak memory ratio 1,000 / 100 problems: {ratio:.2f} ({verdict} the 1.5x target)")


if __name__ == "__main__":
    main()
