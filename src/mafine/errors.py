"""The one exception type whose message is shown to the user as is: one line, no traceback."""


class MafineError(Exception):
    """An error the user can act on. Its message must never contain a secret."""


class QuotaExhausted(MafineError):
    """A quota that waiting will not restore (per-day, or a tier without quota): stop the stage."""


class StdoutClosed(Exception):
    """Standard output was closed (`mafine run ... | head` after `head` exits): the command
    stops as an interruption does, since nothing it prints can be read any more."""
