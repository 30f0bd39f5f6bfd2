"""Atomic writes (a file is either the old version or the complete new one, never half written) and
locks that let processes share a file safely."""
import contextlib
import fcntl
import io
import json
import os
import sys
from pathlib import Path

import torch

from .errors import BadValueError


class NotARegularFileError(BadValueError):
    """An atomic write would have renamed a file over a device, a pipe or another special file."""


def _replace_via_tmp(path, write):
    """Write through a temporary file beside `path`, then rename it over `path`. A failure (a full disk, a
    read-only folder) raises OSError naming `path` itself and leaves `path` as it was, with no temporary file."""
    path = Path(path)
    if path.exists() and not path.is_file() and not path.is_dir():  # a folder: os.replace refuses by itself
        raise NotARegularFileError(f"{path} is not a regular file (a device, pipe or socket); nothing was "
                                   "written: write to a regular file")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write(tmp)
        os.replace(tmp, path)
    except OSError as error:
        if error.filename == str(path) or error.errno is None:
            raise
        raise type(error)(error.errno, f"{error.strerror or error} (writing {path}; nothing was written)",
                          str(path)) from error
    finally:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass  # a read-only folder: nothing could be created in it either


def _write_synced(tmp, data):
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())  # the bytes are on disk before the rename makes them the file


def atomic_write_file(path, write):
    """`write(tmp)` writes the whole file at a temporary path (pass the format explicitly: the temporary name
    ends in .tmp); it then replaces `path` in one rename. For files written by a library (PNG, plots)."""
    _replace_via_tmp(path, write)


def atomic_write_text(path, text):
    _replace_via_tmp(path, lambda tmp: _write_synced(tmp, text.encode()))


def atomic_write_json(path, obj):
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def atomic_torch_save(obj, path):
    def write(tmp):
        buffer = io.BytesIO()
        torch.save(obj, buffer)
        _write_synced(tmp, buffer.getvalue())
    _replace_via_tmp(path, write)


@contextlib.contextmanager
def file_lock(path, waiting=None):
    """Hold an exclusive advisory lock (fcntl.flock) on `path` for the duration of the block.

    Processes that take the same lock wait for each other; the lock is released when the block ends
    or the process dies, so a killed holder never leaves a stale lock behind. The file itself is
    left in place (deleting it could let two processes lock two different files of the same name).
    A process that has to wait says so once on stderr (`waiting`, else a sentence naming the lock file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(waiting or f"waiting for the lock {path}: another process holds it (it is released when that "
                  "process finishes or dies)", file=sys.stderr, flush=True)
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def unwritable_reason(path, want_dir):
    """Why `path` cannot be written (as a folder if `want_dir`, else as a file), or None if it can."""
    path = Path(path)
    if path.exists():
        if want_dir and not path.is_dir():
            return f"{path} is a file, not a folder"
        if not want_dir and path.is_dir():
            return f"{path} is a folder, not a file"
        if not want_dir and not path.is_file():
            return f"{path} is not a regular file (a device, pipe or socket)"
        target = path if want_dir else path.parent
        return None if os.access(target, os.W_OK | os.X_OK) else f"{target} is not writable"
    ancestor = path.parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        return f"{ancestor} is a file, so nothing can be created under it"
    return None if os.access(ancestor, os.W_OK | os.X_OK) else f"{ancestor} is not writable"
