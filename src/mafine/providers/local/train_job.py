"""Train one recorded tuning job in this process: the entry point of a data-parallel launch.

    torchrun --standalone --nproc_per_node=2 -m mafine.providers.local.train_job JOB_DIR
    accelerate launch --num_processes 2 -m mafine.providers.local.train_job JOB_DIR

Every process loads the base model and runs the same TRL trainer; transformers' Trainer
(accelerate) reads the launcher's environment, wraps the model in DistributedDataParallel
(gloo on CPUs, nccl on GPUs) and gives each process its share of every batch. The first
process publishes the adapter and DONE.json. The provider launches this itself when
`provider.local.train_processes` > 1; a job that is already finished is left alone.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from rich.console import Console

from mafine.providers.local.layout import DONE_FILE, JOB_FILE
from mafine.providers.local.provider import read_job
from mafine.providers.local.settings import LocalSettings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("job_dir", type=Path)
    parser.add_argument("--run-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    if (args.job_dir / DONE_FILE).is_file():
        return 0
    spec = read_job(args.job_dir)
    if spec is None:
        raise SystemExit(f"{args.job_dir}: no {JOB_FILE}")
    data = json.loads((args.job_dir / JOB_FILE).read_text(encoding="utf-8"))
    settings = LocalSettings.model_validate(data["local_settings"])
    first = int(os.environ.get("RANK", "0")) == 0
    console = Console(stderr=True, quiet=not first)

    from mafine.providers.local.engine import Engine
    from mafine.providers.local.training import train_adapter

    engine = Engine(data["base_model"], settings, console, args.run_dir)
    train_adapter(engine, spec, console)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
