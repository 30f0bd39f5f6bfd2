"""Atomic writes: a file is either the old version or the complete new one, never half written."""
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


def atomic_write_text(path, text):
    _replace_via_tmp(path, lambda tmp: tmp.write_text(text))


def atomic_write_json(path, obj):
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def atomic_torch_save(obj, path):
    _replace_via_tmp(path, lambda tmp: torch.save(obj, tmp))
