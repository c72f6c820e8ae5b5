"""The one exception type whose message is shown to the user as is: one line, no traceback."""


class MafineError(Exception):
    """An error the user can act on. Its message must never contain a secret."""


class QuotaExhausted(MafineError):
    """A quota that waiting will not restore (per-day, or a tier without quota): stop the stage."""
