"""One decorator shared by every command: known failures become one clear line and exit status 1."""
import errno
import functools
import json
import os

import click

from segma_bench.core.errors import UserError

DEBUG_ENV = "SEGMA_DEBUG"  # set to 1 to get the full traceback instead of the one line


def user_errors(command):
    """Known failures (bad names, missing data or weights, corrupt checkpoints, NaN losses) become one
    clear line and exit status 1 instead of a traceback (unless $SEGMA_DEBUG is set)."""
    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        # the suite's own UserError family (bad names and values, missing or corrupt data, weights,
        # checkpoints, records and run folders, non-finite losses) and the file errors of the user's paths;
        # any other exception (a ValueError from deep inside torch, say) is a bug and keeps its traceback
        known = (UserError, json.JSONDecodeError, FileNotFoundError, NotADirectoryError, IsADirectoryError,
                 PermissionError)
        try:
            return command(*args, **kwargs)
        except known as error:
            if os.environ.get(DEBUG_ENV):
                raise
            raise click.ClickException(f"{type(error).__name__}: {error}") from error
        except OSError as error:
            if os.environ.get(DEBUG_ENV) or error.errno not in FILE_ERRNOS or not error.filename:
                raise
            raise click.ClickException(f"cannot write {error.filename}: {os.strerror(error.errno)}; "
                                       f"{FILE_ERRNOS[error.errno]}") from error
    return wrapper


# OS errors of a file being written that are the machine's state, not a bug: one line naming the path. The suite's
# writes are atomic (core/storage.py), so the file that was there is intact and no temporary file is left.
FILE_ERRNOS = {errno.ENOSPC: "free some space (or write elsewhere) and run the command again",
               errno.EDQUOT: "free some of your quota (or write elsewhere) and run the command again",
               errno.EROFS: "choose a folder on a writable file system"}
