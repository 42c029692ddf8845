"""Errors raised by readers and the shard planner. Each names the input at fault."""

from __future__ import annotations


class InputError(ValueError):
    """Bad input met in strict mode: the message is `f"{uri}: line {n}: {reason}"`."""


class InputNotFound(FileNotFoundError):
    """An input path, directory or glob that matches no file."""
