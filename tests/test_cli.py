"""The command line (cli.py) through click's CliRunner: listings, one-line errors, --set, a tiny training run."""
import json

import click
import pytest
from click.testing import CliRunner

import segma_bench.cli.main as cli_module
import segma_bench.datasets as datasets
import segma_bench.methods as methods
from segma_bench.cli.main import cli, default_run_dir, parse_settings


@pytest.fixture
def fake_cli_dataset(monkeypatch, make_fake):
    """A registered dataset name the CLI can load, backed by the tiny fake dataset."""
    monkeypatch.setitem(datasets.DATASETS, "fake-cli", lambda root, cache_dir: make_fake(name="fake-cli"))
    return "fake-cli"


def invoke(*args, env=None):
    return CliRunner().invoke(cli, list(args), env=env)


def assert_one_line_error(result, *fragments):
    assert result.exit_code == 1, result.output
    err = result.stderr.strip()
    assert len(err.splitlines()) == 1, err
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in err, (fragment, err)
    return err


def test_methods_lists_the_builtins_with_descriptions():
    result = invoke("methods")
    assert result.exit_code == 0, result.output
    lines = {line.split()[0]: line for line in result.stdout.splitlines() if line.strip()}
    for name in ("segma", "segma-unsup", "cwae"):
        description = methods.describe(methods.get_method(name))
        assert len(description) > 20
        assert lines[name].split(None, 1)[1].strip() == description
    assert "Cramer-Wold" in lines["cwae"] and "labels" in lines["segma-unsup"]


def test_get_method_unknown_name_lists_the_registered_ones():
    with pytest.raises(methods.UnknownNameError) as info:
        methods.get_method("no-such-method")
    message = str(info.value)
    assert "'no-such-method'" in message and "segma-unsup" in message and "cwae" in message
    assert "--plugin" in message and "SEGMA_PLUGINS" in message
    assert isinstance(info.value, KeyError) and not message.startswith('"')


def test_train_unknown_method_is_one_line(fake_cli_dataset):
    result = invoke("train", "--method", "no-such-method", "--dataset", fake_cli_dataset)
    err = assert_one_line_error(result, "UnknownNameError", "'no-such-method'", "segma", "--plugin")
    assert err.startswith("Error:")


def test_train_unknown_dataset_is_one_line():
    result = invoke("train", "--method", "segma", "--dataset", "no-such-data")
    assert_one_line_error(result, "UnknownNameError", "'no-such-data'", "mnist", "svhn", "celeba")


def test_train_missing_data_is_one_line(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = invoke("train", "--method", "segma", "--dataset", "mnist", "--data-root", str(empty))
    assert_one_line_error(result, "DataNotFoundError", "--data-root", "SEGMA_DATA_ROOT")


def test_train_unknown_setting_is_one_line(fake_cli_dataset):
    result = invoke("train", "--method", "segma", "--dataset", fake_cli_dataset, "--set", "no_such=1")
    assert_one_line_error(result, "ValueError", "no_such", "learning_rate")


def test_set_parsing():
    from segma_bench.core.settings import typed_settings
    raw = parse_settings(["learning_rate=1e-3", "hidden=[32,32]", "architecture=mlp", "learn_means=false",
                          "num_components=4", "divergence_rows=a=b"])
    assert raw["divergence_rows"] == "a=b" and raw["hidden"] == "[32,32]"
    settings = typed_settings(methods.get_method("segma"), raw)
    assert settings == {"learning_rate": 1e-3, "hidden": (32, 32), "architecture": "mlp", "learn_means": False,
                        "num_components": 4, "divergence_rows": "a=b"}
    assert isinstance(settings["hidden"], tuple) and isinstance(settings["num_components"], int)
    with pytest.raises(click.BadParameter, match="key=value"):
        parse_settings(["learning_rate"])
    result = invoke("train", "--method", "segma", "--dataset", "mnist", "--set", "oops")
    assert result.exit_code == 2 and "key=value" in result.output


def test_default_run_dir_depends_on_the_settings():
    plain = default_run_dir("segma", "mnist", 3, {})
    assert plain.as_posix() == "runs/mnist/segma/seed3"
    a = default_run_dir("segma", "mnist", 3, {"learning_rate": 1e-3})
    b = default_run_dir("segma", "mnist", 3, {"learning_rate": 2e-3})
    assert a != b and a != plain and a == default_run_dir("segma", "mnist", 3, {"learning_rate": 1e-3})
    assert default_run_dir("segma", "mnist", 0, {"x": 1, "y": 2}) == default_run_dir("segma", "mnist", 0, {"y": 2, "x": 1})


def test_train_and_resume_through_the_cli(tmp_path, fake_cli_dataset):
    args = ["train", "--method", "segma", "--dataset", fake_cli_dataset, "--set", "hidden=[16]",
            "--set", "learning_rate=0.001"]
    first = invoke(*args, "--epochs", "1")
    assert first.exit_code == 0, first.output
    assert "1 epochs, test error" in first.stdout
    run_dir = cli_module.RUNS_DIR / fake_cli_dataset
    (folder,) = list(run_dir.iterdir())
    assert folder.name.startswith("segma-") and (folder / "seed0" / "checkpoint.pt").is_file()
    second = invoke(*args, "--epochs", "2")  # same settings: resumes (a tuple setting must not look different)
    assert second.exit_code == 0, second.output
    metrics = json.loads((folder / "seed0" / "metrics.json").read_text())
    assert metrics["epochs_completed"] == 2
    assert "resumed from the end of epoch 1" in (folder / "seed0" / "train.log").read_text()
    # a corrupt checkpoint is one clear line, and stays where it is
    (folder / "seed0" / "checkpoint.pt").write_bytes(b"garbage")
    result = invoke(*args, "--epochs", "3")
    assert_one_line_error(result, "CheckpointError", "checkpoint.pt")
    assert (folder / "seed0" / "checkpoint.pt").read_bytes() == b"garbage"


def test_missing_plugin_file_is_one_line(tmp_path):
    result = invoke("--plugin", str(tmp_path / "nope.py"), "methods")
    assert_one_line_error(result, "nope.py", "does not exist")


def test_report_names_the_train_command_that_resumes_the_same_run(tmp_path, fake_cli_dataset):
    from segma_bench.reporting.run_report import render_run_report
    args = ["train", "--method", "segma", "--dataset", fake_cli_dataset, "--set", "hidden=[16]",
            "--set", "learning_rate=0.001", "--epochs", "1"]
    assert invoke(*args).exit_code == 0
    (folder,) = list((cli_module.RUNS_DIR / fake_cli_dataset).iterdir())
    text, _ = render_run_report(folder / "seed0", "report")
    command = text.split("from the run made by `")[1].split("`")[0]
    assert command.startswith("python cli.py train ") and "--epochs 1" in command
    rerun = invoke(*command.split()[2:])
    assert rerun.exit_code == 0, rerun.output
    assert [p.name for p in (cli_module.RUNS_DIR / fake_cli_dataset).iterdir()] == [folder.name]  # same run
    assert json.loads((folder / "seed0" / "metrics.json").read_text())["epochs_completed"] == 1
