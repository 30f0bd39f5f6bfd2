"""One decorator shared by every command: known failures become one clear line and exit status 1."""
import functools
import os

import click

from methods.registry import UnknownNameError

DEBUG_ENV = "SEGMA_DEBUG"  # set to 1 to get the full traceback instead of the one line


def user_errors(command):
    """Known failures (bad names, missing data or weights, corrupt checkpoints, NaN losses) become one
    clear line and exit status 1 instead of a traceback (unless $SEGMA_DEBUG is set)."""
    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        from datasets import DataNotFoundError
        from evaluation.inception import FIDWeightsError
        from methods.base import OperationNotSupported
        from training import CheckpointError, NonFiniteLossError, RunMismatchError
        known = (UnknownNameError, DataNotFoundError, CheckpointError, NonFiniteLossError, RunMismatchError,
                 OperationNotSupported, FIDWeightsError, FileNotFoundError, ValueError, NotADirectoryError,
                 PermissionError)
        try:
            return command(*args, **kwargs)
        except known as error:
            if os.environ.get(DEBUG_ENV):
                raise
            raise click.ClickException(f"{type(error).__name__}: {error}") from error
    return wrapper
