"""The package as a user installs it: one namespace, one command line, the README's headline made from records."""
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_the_readme_headline_table_is_the_rendering_of_the_committed_records():
    from segma_bench.reporting.status import HEADLINE_END, HEADLINE_START, render_headline
    text = (REPO / "README.md").read_text()
    block = text.split(HEADLINE_START, 1)[1].split(HEADLINE_END, 1)[0]
    assert block == "\n" + render_headline(REPO / "results")
    first_screen = "\n".join(text.splitlines()[:45])
    assert "| SeGMA |" in first_screen and "pip install" in first_screen  # results and install on the first screen


def test_no_module_edits_the_import_path():
    """Imports resolve through the installed package only (src layout); nothing appends to sys.path."""
    offenders = []
    for path in [*REPO.glob("src/**/*.py"), *REPO.glob("tests/*.py"), *REPO.glob("benchmarks/*.py"),
                 *REPO.glob("examples/*.py"), REPO / "cli.py"]:
        if path.name == "test_package.py":
            continue
        if re.search(r"sys\.path\.(insert|append)|PYTHONPATH\"\]\s*=", path.read_text()):
            offenders.append(str(path.relative_to(REPO)))
    assert offenders == []


def test_no_generic_top_level_package_is_shipped():
    """Everything lives under segma_bench: no top-level `datasets`, `methods`, ... that other distributions own."""
    for name in ("datasets", "methods", "training", "evaluation", "reporting", "figures", "storage", "provenance"):
        assert not (REPO / name).exists() and not (REPO / f"{name}.py").exists(), name


@pytest.mark.slow
def test_the_console_script_and_the_shim_run_the_same_command_line(tmp_path):
    script = Path(sys.executable).parent / "segma-bench"
    shim = subprocess.run([sys.executable, str(REPO / "cli.py"), "methods"], capture_output=True, text=True, cwd=tmp_path)
    assert shim.returncode == 0 and "segma" in shim.stdout
    module = subprocess.run([sys.executable, "-m", "segma_bench.cli.main", "methods"], capture_output=True, text=True,
                            cwd=tmp_path)
    assert module.stdout == shim.stdout
    if script.exists():  # installed with pip (requirements.txt installs the checkout editable)
        console = subprocess.run([str(script), "methods"], capture_output=True, text=True, cwd=tmp_path)
        assert console.stdout == shim.stdout


def test_every_command_is_one_subcommand_of_one_group():
    from segma_bench.cli.main import cli
    assert {"train", "reproduce", "table", "evaluate", "fid", "kid", "report", "figures", "confusion", "methods",
            "status", "extrapolate", "ablation", "label-subsets", "long-runs"} <= set(cli.commands)


def test_a_bug_keeps_its_traceback_while_a_user_error_is_one_line():
    """user_errors turns the suite's UserError family into one line, not any ValueError (which hides bugs)."""
    import click

    from segma_bench.cli.errors import user_errors
    from segma_bench.core.errors import BadValueError

    @user_errors
    def bad_value():
        raise BadValueError("latent_dim must be positive")

    @user_errors
    def bug():
        raise ValueError("an internal inconsistency")

    with pytest.raises(click.ClickException, match="latent_dim must be positive"):
        bad_value()
    with pytest.raises(ValueError, match="internal inconsistency"):
        bug()
