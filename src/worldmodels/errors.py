"""Errors that reach the user as one line and exit code 2."""


class UserError(Exception):
    """A problem with the user's input: the CLI prints the message on one line and exits 2.

    The message names the problem and the fix, e.g. ``unknown env 'gym:CartPol-v1'; did you
    mean gym:CartPole-v1?``.
    """


class MissingExtraError(UserError):
    """An optional dependency is missing; the message names the ``pip install`` that fixes it."""

    def __init__(self, what: str, extra: str, module: str):
        super().__init__(
            f"{what} needs the '{module}' package, which is not installed; "
            f"fix: pip install 'worldmodels[{extra}]'"
        )
        self.extra = extra
        self.module = module
