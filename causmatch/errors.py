"""User-facing errors.

Every error a user can cause (bad file, bad shape, bad option) is raised as a
``CausMatchError`` whose message is ONE line saying what was wrong and what to do.
The CLI prints it as ``error: <message>`` (exit 2); the app shows it in an error panel.
"""


class CausMatchError(Exception):
    """Base class: a one-line, actionable message for the user."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))


class DataError(CausMatchError):
    """A dataset folder or one of its files is missing, malformed or inconsistent."""


class CheckpointError(CausMatchError):
    """A checkpoint is missing, truncated, corrupt or does not match the data."""


class ConfigError(CausMatchError):
    """A configuration key or value is unknown or invalid."""
