"""Atomic writes: a file is either the old version or the complete new one, never half written."""
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
