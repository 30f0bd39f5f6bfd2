"""One decorator shared by every command: known failures become one clear line and exit status 1."""
import functools

import click

from methods.registry import UnknownNameError


def user_errors(command):
    """Known failures (bad names, missing data or weights, corrupt checkpoints, NaN losses) become one
    clear line and exit status 1 instead of a traceback."""
    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        from datasets import DataNotFoundError
        from evaluation.inception import FIDWeightsError
        from methods.base import OperationNotSupported
        from training import CheckpointError, NonFiniteLossError, RunMismatchError
        known = (UnknownNameError, DataNotFoundError, CheckpointError, NonFiniteLossError, RunMismatchError,
                 OperationNotSupported, FIDWeightsError, FileNotFoundError, ValueError)
        try:
            return command(*args, **kwargs)
        except known as error:
            raise click.ClickException(f"{type(error).__name__}: {error}") from error
    return wrapper
