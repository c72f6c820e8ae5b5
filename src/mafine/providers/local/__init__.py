"""The local open-model provider: transformers + peft, one base model, a LoRA adapter per
agent model. Importing this package does not import torch (see provider.require_extra)."""

from mafine.providers.local.provider import EXTRA_MESSAGE, LocalProvider, LocalStats
from mafine.providers.local.settings import LocalSettings

__all__ = ["EXTRA_MESSAGE", "LocalProvider", "LocalSettings", "LocalStats"]
