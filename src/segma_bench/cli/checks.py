"""Checks of command-line options made before any data or model is loaded, and one-line usage errors.

Every check fails with one line on stderr (what is wrong and how to fix it) and a non-zero exit."""
import os
import shlex
import sys
from pathlib import Path

import click

from segma_bench.core.storage import unwritable_reason

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
        # reproduce's --launcher is eager, so it is parsed before --device wherever it was typed
        if ctx is not None and ctx.command.name == "reproduce" and ctx.params.get("launcher") == "slurm":
            return value  # the SLURM jobs' GPUs, not this login node's, decide (reporting/cluster.py)
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
    """Existing files among `paths` are replaced only with --force (a committed record must not vanish), and
    only regular files: --force never puts a file in the place of a device (/dev/full), a pipe or a folder."""
    special = [str(p) for p in paths if Path(p).exists() and not Path(p).is_file()]
    if special:
        raise click.ClickException(f"{' and '.join(special)} is not a regular file (a device, pipe or folder); "
                                   "--force replaces only regular files: choose another --out")
    existing = [str(p) for p in paths if Path(p).exists()]
    if existing and not force:
        raise click.ClickException(f"{' and '.join(existing)} already exist(s) ({what}); pass --force to "
                                   "replace it, or choose another --out")


def invocation():
    """The command as typed, with the plugins it loaded from SEGMA_PLUGINS, so that it can be run again.
    Always spelled `python cli.py ...`, also when typed as `segma-bench ...` or `python -m segma_bench ...`:
    the three run the same code, so a record does not depend on the entry point, and the spelling works in
    the checkout where the committed results live (`segma-bench` takes the same arguments)."""
    plugins = os.environ.get(PLUGINS_ENV, "")
    prefix = f"{PLUGINS_ENV}={shlex.quote(plugins)} " if plugins else ""
    return prefix + "python cli.py " + shlex.join(sys.argv[1:])


# ---------------------------------------------------------------- option groups, declared once

def _options(*options):
    def decorate(command):
        for option in reversed(options):
            command = option(command)
        return command
    return decorate


DATA_ROOT_OPTION = click.option(
    "--data-root", type=click.Path(file_okay=False),
    help="Folder with MNIST/, SVHN/ or celeba/ (also $SEGMA_DATA_ROOT; default ./data, downloading MNIST).")
CACHE_DIR_OPTION = click.option(
    "--cache-dir", type=click.Path(file_okay=False),
    help="Cache for preprocessed data and FID reference statistics (also $SEGMA_CACHE_DIR; default ./.cache).")
FID_WEIGHTS_OPTION = click.option(
    "--fid-weights", type=click.Path(dir_okay=False),
    help="pytorch-fid's FID Inception weights, pt_inception-2015-12-05.pth (also $SEGMA_FID_WEIGHTS; "
         "default: pytorch-fid's download).")
DEVICE_OPTION = click.option(
    "--device", default="auto", show_default=True, callback=check_device,
    help="auto picks CUDA when present; cpu, cuda, cuda:N.")

data_options = _options(DATA_ROOT_OPTION, CACHE_DIR_OPTION)
"""--data-root and --cache-dir."""
data_device_options = _options(DATA_ROOT_OPTION, CACHE_DIR_OPTION, DEVICE_OPTION)
"""--data-root, --cache-dir and --device (checked)."""
evaluation_options = _options(DATA_ROOT_OPTION, CACHE_DIR_OPTION, FID_WEIGHTS_OPTION, DEVICE_OPTION)
"""--data-root, --cache-dir, --fid-weights and --device (checked)."""

SEED = click.IntRange(0, 2**63 - 1)  # what torch.manual_seed accepts: a larger seed is a usage error, not a traceback
