"""The errors strokezoo raises for bad input, at the bottom of the library: every layer may raise them."""

from __future__ import annotations

import os

__all__ = ["InputError", "InputsRefused"]


class InputError(ValueError):
    """A user-supplied file that cannot be used; the message starts with the file's path."""

    def __init__(self, path: str | os.PathLike, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class InputsRefused(RuntimeError):
    """Raised at the end of a run that refused some of its cases; the message lists them."""
