"""Atomic writes (a file is either the old version or the complete new one, never half written) and
locks that let processes share a file safely."""
import contextlib
import fcntl
import io
import json
import os
from pathlib import Path

import torch


def _replace_via_tmp(path, write):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _write_synced(tmp, data):
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())  # the bytes are on disk before the rename makes them the file


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
def file_lock(path):
    """Hold an exclusive advisory lock (fcntl.flock) on `path` for the duration of the block.

    Processes that take the same lock wait for each other; the lock is released when the block ends
    or the process dies, so a killed holder never leaves a stale lock behind. The file itself is
    left in place (deleting it could let two processes lock two different files of the same name)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
