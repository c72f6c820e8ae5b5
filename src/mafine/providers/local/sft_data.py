"""An agent model's training file, read into TRL's conversational prompt-completion rows.

No torch here. Each mafine SFT row is one conversation that ends with the reply to learn:
a generation example is [question, round-1 response]; a critic example is the whole debate
up to the agent's final response. The prompt is every message before the last one, the
completion is the last: the loss covers the final reply only, never an earlier assistant
turn (a corrected, DC-, critic example must not teach the critic its own wrong first
answer), while the earlier turns stay as context.
"""

from __future__ import annotations

import json
from pathlib import Path

from mafine.errors import MafineError


class BadTrainingData(MafineError):
    """The training file cannot be used (missing, empty, malformed): the job fails."""


def read_conversations(path: Path) -> list[list[dict]]:
    """The `messages` of each JSONL row (other fields, e.g. problem_id and kind, ignored)."""
    if not path.is_file():
        raise BadTrainingData(f"training file not found: {path}")
    conversations = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            messages = [{"role": m["role"], "content": m["content"]} for m in row["messages"]]
        except (ValueError, KeyError, TypeError):
            raise BadTrainingData(
                f"{path}:{number}: not a row with messages [{{role, content}}, ...]"
            ) from None
        if len(messages) < 2 or messages[-1]["role"] != "assistant":
            raise BadTrainingData(
                f"{path}:{number}: a row must end with the assistant reply to learn, after "
                "at least one message"
            )
        conversations.append(messages)
    if not conversations:
        raise BadTrainingData(f"{path}: no training examples")
    return conversations


def prompt_completion(messages: list[dict]) -> dict[str, list[dict]]:
    """TRL's conversational prompt-completion row: the loss falls on the completion alone."""
    return {"prompt": messages[:-1], "completion": messages[-1:]}
