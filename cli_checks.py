"""Checks of command-line options made before any data or model is loaded, and one-line usage errors.

Every check fails with one line on stderr (what is wrong and how to fix it) and a non-zero exit."""
import os
import shlex
import sys
from pathlib import Path

import click

PLUGINS_ENV = "SEGMA_PLUGINS"


class OneLineUsageError(click.ClickException):
    """click's usage errors print the usage and a hint over several lines; ours is one line, exit status 2."""
    exit_code = 2


def one_line(error):
    command = error.ctx.command_path if error.ctx is not None else "python cli.py"
    return OneLineUsageError(f"{error.format_message()} (see `{command} --help`)")


class OneLineErrorsGroup(click.Group):
    """A click group whose usage errors (bad option values, unknown commands) are one line on stderr."""

    def make_context(self, info_name, args, parent=None, **extra):
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except click.exceptions.NoArgsIsHelpError:
            raise
        except click.UsageError as error:
            raise one_line(error) from error

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except click.exceptions.NoArgsIsHelpError:
            raise
        except click.UsageError as error:
            raise one_line(error) from error


def check_device(ctx, param, value):
    """auto, cpu, cuda or cuda:N (where CUDA is present), mps where available."""
    import torch
    if value is None or value == "auto":
        return value
    try:
        device = torch.device(value)
    except (RuntimeError, ValueError):
        raise click.BadParameter(f"{value!r} is not a device; use auto, cpu, cuda or cuda:N", param=param) from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise click.BadParameter(f"{value!r}: no CUDA GPU is visible to torch here; use --device cpu "
                                     "(or auto, which picks CUDA where present)", param=param)
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise click.BadParameter(f"{value!r}: this machine has {torch.cuda.device_count()} CUDA device(s), "
                                     f"numbered from 0", param=param)
    elif device.type == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise click.BadParameter(f"{value!r}: MPS is not available here; use --device cpu", param=param)
    elif device.type not in ("cpu", "cuda", "mps"):
        raise click.BadParameter(f"{value!r} is not supported; use auto, cpu, cuda or cuda:N", param=param)
    return value


def unwritable_reason(path, want_dir):
    """Why `path` cannot be written (as a folder if `want_dir`, else as a file), or None if it can."""
    path = Path(path)
    if path.exists():
        if want_dir and not path.is_dir():
            return f"{path} is a file, not a folder"
        if not want_dir and path.is_dir():
            return f"{path} is a folder, not a file"
        target = path if want_dir else path.parent
        return None if os.access(target, os.W_OK | os.X_OK) else f"{target} is not writable"
    ancestor = path.parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        return f"{ancestor} is a file, so nothing can be created under it"
    return None if os.access(ancestor, os.W_OK | os.X_OK) else f"{ancestor} is not writable"


def _writable(value, param, want_dir):
    """Refuse, before any work, an output path that could not be written."""
    if value is not None:
        reason = unwritable_reason(value, want_dir=want_dir)
        if reason:
            raise click.BadParameter(f"{reason}; choose another {'folder' if want_dir else 'path'}", param=param)
    return value


def writable_dir(ctx, param, value):
    """Callback for output folders."""
    return _writable(value, param, want_dir=True)


def writable_file(ctx, param, value):
    """Callback for output files."""
    return _writable(value, param, want_dir=False)


def refuse_overwrite(paths, force, what):
    """Existing files among `paths` are replaced only with --force (a committed record must not vanish)."""
    existing = [str(p) for p in paths if Path(p).exists()]
    if existing and not force:
        raise click.ClickException(f"{' and '.join(existing)} already exist(s) ({what}); pass --force to "
                                   "replace it, or choose another --out")


def invocation():
    """The command as typed, with the plugins it loaded from SEGMA_PLUGINS, so that it can be run again."""
    plugins = os.environ.get(PLUGINS_ENV, "")
    prefix = f"{PLUGINS_ENV}={shlex.quote(plugins)} " if plugins else ""
    return prefix + "python cli.py " + shlex.join(sys.argv[1:])
