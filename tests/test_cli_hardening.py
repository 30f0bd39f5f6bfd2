"""What a hostile but realistic user tries. Every case ends in one line on stderr saying what is
wrong and how to fix it, a non-zero exit, no traceback, and nothing half-written or replaced; options are
checked before any data or model is loaded."""
import json
import shutil

import pytest
import torch

import segma_bench.datasets as datasets
from conftest import invoke, one_line_error  # noqa: F401  (loads: a conftest fixture)
from segma_bench.cli.main import cli


def train_args(*extra, run_dir=None):
    args = ["train", "--method", "segma", "--dataset", "fake-cli", "--set", "hidden=16", "--epochs", "1"]
    return args + (["--run-dir", str(run_dir)] if run_dir else []) + list(extra)


@pytest.fixture
def trained_run(tmp_path, loads):
    run_dir = tmp_path / "run"
    result = invoke(*train_args(run_dir=run_dir))
    assert result.exit_code == 0, result.output
    loads.clear()
    return run_dir


# ---- 1. report replaces a committed record only with --force ----------------------------------------------
def test_report_refuses_to_replace_an_existing_record(tmp_path, trained_run):
    out = tmp_path / "results" / "long_run.md"
    out.parent.mkdir()
    out.write_text("the committed 82-epoch record\n")
    result = invoke("report", "--run", str(trained_run), "--out", str(out))
    one_line_error(result, str(out), "--force")
    assert out.read_text() == "the committed 82-epoch record\n"
    assert not out.with_suffix(".json").exists()
    forced = invoke("report", "--run", str(trained_run), "--out", str(out), "--force")
    assert forced.exit_code == 0, forced.output
    assert "training record" in out.read_text()
    assert json.loads(out.with_suffix(".json").read_text())["epochs_completed"] == 1


def test_report_refuses_when_only_the_json_twin_exists(tmp_path, trained_run):
    out = tmp_path / "record.md"
    out.with_suffix(".json").write_text("{}")
    one_line_error(invoke("report", "--run", str(trained_run), "--out", str(out)), "record.json", "--force")
    assert not out.exists() and out.with_suffix(".json").read_text() == "{}"


# ---- 2 and 7. output paths that cannot be written fail before any data is loaded ---------------------------
@pytest.fixture
def a_file(tmp_path):
    path = tmp_path / "a_file"
    path.write_text("not a folder")
    return path


def test_reproduce_results_dir_under_a_file_fails_before_any_work(a_file, tmp_path, loads):
    result = invoke("reproduce", "--table", "2", "--dataset", "fake-cli", "--method", "segma", "--seeds", "1",
                    "--runs-root", str(tmp_path / "runs"), "--results-dir", str(a_file / "results"))
    one_line_error(result, "--results-dir", "a_file", "is a file")
    assert loads == [] and not (tmp_path / "runs").exists()


def test_reproduce_refuses_an_unwritable_results_dir_in_python_too(a_file):
    from segma_bench.reporting.options import ReproduceOptions
    from segma_bench.reporting.reproduce import reproduce
    with pytest.raises(NotADirectoryError, match="results folder"):
        reproduce(2, ["fake-cli"], ["segma"], 1, "quick", ReproduceOptions(results_dir=str(a_file / "x")), "cmd")


@pytest.mark.skipif(shutil.which("id") and __import__("os").geteuid() == 0, reason="root may write anywhere")
def test_reproduce_read_only_results_dir(tmp_path, loads):
    read_only = tmp_path / "ro"
    read_only.mkdir(mode=0o555)
    result = invoke("reproduce", "--table", "2", "--dataset", "fake-cli", "--results-dir", str(read_only / "r"))
    one_line_error(result, "not writable")
    assert loads == []


def test_train_run_dir_under_a_file(a_file, loads):
    one_line_error(invoke(*train_args(run_dir=a_file / "run")), "--run-dir", "is a file")
    one_line_error(invoke(*train_args(run_dir=a_file)), "--run-dir", "is a file")
    assert loads == []


def test_report_and_figures_out_under_a_file(a_file, trained_run, loads):
    one_line_error(invoke("report", "--run", str(trained_run), "--out", str(a_file / "r.md")), "--out", "is a file")
    one_line_error(invoke("figures", "--run", str(trained_run), "--out", str(a_file / "figs")), "--out", "is a file")
    assert loads == []  # refused before the data and the model were loaded


# ---- 3. --set values are checked against the setting's type ----------------------------------------------
@pytest.mark.parametrize("setting, fragments", [
    ("learning_rate=abc", ["learning_rate", "float", "--set learning_rate="]),
    ("latent_dim=2.5", ["latent_dim", "int", "--set latent_dim=10"]),
    ("beta=abc", ["beta", "float"]),
    ("hidden=64,abc", ["hidden", "tuple of int", "64,64"]),
    ("learn_means=maybe", ["learn_means", "bool", "true"]),
    ("learning_rate=nan", ["learning_rate", "float"]),
])
def test_set_values_of_the_wrong_type_are_one_line_and_make_no_folder(setting, fragments, tmp_path, loads):
    run_dir = tmp_path / "run"
    result = invoke("train", "--method", "segma", "--dataset", "fake-cli", "--set", setting, "--epochs", "1",
                    "--run-dir", str(run_dir))
    one_line_error(result, *fragments)
    assert loads == [] and not run_dir.exists() and not (tmp_path / "runs").exists()


def test_set_accepts_both_tuple_spellings_and_numbers_for_floats(tmp_path, loads):
    for i, hidden in enumerate(["16,16", "[16,16]"]):
        run_dir = tmp_path / f"run{i}"
        result = invoke("train", "--method", "segma", "--dataset", "fake-cli", "--set", f"hidden={hidden}",
                        "--set", "beta=2", "--set", "latent_dim=4", "--epochs", "1", "--run-dir", str(run_dir))
        assert result.exit_code == 0, result.output
        config = json.loads((run_dir / "config.json").read_text())
        assert config["method_config"]["hidden"] == [16, 16]
        assert config["method_config"]["beta"] == 2.0 and isinstance(config["method_config"]["beta"], float)
        assert config["method_config"]["latent_dim"] == 4


def test_set_conversion_rules():
    from segma_bench.core.settings import SettingError, typed_settings
    from segma_bench.methods import get_method
    segma = get_method("segma")
    converted = typed_settings(segma, {"latent_dim": "1e1", "learn_means": "no", "hidden": "(8, 4)",
                                       "learning_rate": "3", "architecture": '"conv"'})
    assert converted == {"latent_dim": 10, "learn_means": False, "hidden": (8, 4), "learning_rate": 3.0,
                         "architecture": "conv"}
    assert type(converted["latent_dim"]) is int and type(converted["learning_rate"]) is float
    with pytest.raises(SettingError):
        typed_settings(segma, {"hidden": "8.5,4"})
    with pytest.raises(ValueError, match="unknown setting"):
        typed_settings(segma, {"no_such": "1"})


def test_train_help_documents_the_set_syntax():
    result = invoke("train", "--help")
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    assert "64,64 or [64,64]" in text and "2.5 is refused" in text and "methods --settings" in text


def test_methods_settings_lists_types_and_defaults():
    result = invoke("methods", "--settings", "segma")
    assert result.exit_code == 0, result.output
    lines = {line.split()[0]: line for line in result.output.splitlines()}
    assert "tuple of int" in lines["hidden"] and "(1024, 1024)" in lines["hidden"]
    assert " int " in lines["latent_dim"] and " float " in lines["learning_rate"] and " bool " in lines["learn_means"]
    one_line_error(invoke("methods", "--settings", "nope"), "'nope'")


# ---- 4. a readable checkpoint of another model ------------------------------------------------------------
def test_checkpoint_of_another_model_is_one_line_in_train_and_evaluate(tmp_path, trained_run, loads):
    other = tmp_path / "other"
    assert invoke("train", "--method", "cwae", "--dataset", "fake-cli", "--set", "hidden=8,8", "--set", "latent_dim=3",
                  "--epochs", "1", "--run-dir", str(other)).exit_code == 0
    foreign = (other / "checkpoint.pt").read_bytes()
    (trained_run / "checkpoint.pt").write_bytes(foreign)
    one_line_error(invoke("evaluate", "--run", str(trained_run), "--metric", "test_error"),
                   "CheckpointError", "another model", "checkpoint.pt")
    one_line_error(invoke(*train_args("--epochs", "2", run_dir=trained_run)), "CheckpointError", "another model")
    assert (trained_run / "checkpoint.pt").read_bytes() == foreign  # left untouched


# ---- 5. plugin files that do not load ----------------------------------------------------------------------
@pytest.mark.parametrize("source, fragment", [
    ("def broken(:\n", "SyntaxError"),
    ("import no_such_module_xyz\n", "ModuleNotFoundError"),
    ("from segma_bench.api import register, GenerativeMethod\n@register('segma')\nclass Clash(GenerativeMethod):\n"
     "    pass\n", "already registered"),
])
def test_a_broken_plugin_is_one_line(source, fragment, tmp_path):
    import segma_bench.methods as methods
    before = dict(methods.METHODS)
    plugin = tmp_path / "broken_plugin.py"
    plugin.write_text(source)
    one_line_error(invoke("--plugin", str(plugin), "methods"), "broken_plugin.py", fragment, "--plugin")
    one_line_error(invoke("methods", env={"SEGMA_PLUGINS": str(plugin)}), "broken_plugin.py", fragment)
    assert methods.METHODS == before


# ---- 6. devices ------------------------------------------------------------------------------------------
@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_device_cuda_without_a_gpu(loads, tmp_path):
    one_line_error(invoke(*train_args("--device", "cuda", run_dir=tmp_path / "r")), "--device", "no CUDA GPU", "cpu")
    one_line_error(invoke("figures", "--run", str(tmp_path), "--device", "cuda:0"), "--device")
    assert loads == [] and not (tmp_path / "r").exists()


def test_device_foo(loads, tmp_path, trained_run):
    one_line_error(invoke(*train_args("--device", "foo", run_dir=tmp_path / "r")), "'foo'", "cpu")
    one_line_error(invoke("evaluate", "--run", str(trained_run), "--device", "foo"), "'foo'")
    one_line_error(invoke("reproduce", "--table", "2", "--dataset", "fake-cli", "--device", "foo"), "'foo'")
    assert loads == []


# ---- 8. a truncated MNIST file -----------------------------------------------------------------------------
def test_truncated_mnist_names_the_file_and_its_size(tmp_path):
    from segma_bench.datasets.mnist import RAW_SIZES
    raw = tmp_path / "data" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in RAW_SIZES:
        (raw / name).write_bytes(b"\0" * 64)
    err = one_line_error(invoke("train", "--method", "segma", "--dataset", "mnist", "--data-root",
                                str(tmp_path / "data"), "--run-dir", str(tmp_path / "run")),
                         "DataCorruptError", "64 bytes", "expected", "copy it again")
    assert "not found" not in err and not (tmp_path / "run").exists()


def test_complete_mnist_files_pass_the_size_check(shared_data, tmp_path):
    from segma_bench.datasets.mnist import RAW_SIZES, check_raw_sizes
    raw = shared_data / "MNIST" / "raw"
    # every file is there (the check skips absent ones) with exactly the expected size, and the check passes
    assert {name: (raw / name).stat().st_size for name in RAW_SIZES} == RAW_SIZES
    check_raw_sizes(shared_data)
    # the same file one byte short is refused: the check looks at these files
    name = min(RAW_SIZES, key=RAW_SIZES.get)
    (tmp_path / "MNIST" / "raw").mkdir(parents=True)
    (tmp_path / "MNIST" / "raw" / name).write_bytes((raw / name).read_bytes()[:-1])
    with pytest.raises(datasets.DataCorruptError, match=f"{name} is {RAW_SIZES[name] - 1:,} bytes"):
        check_raw_sizes(tmp_path)


# ---- 9. an empty or invalid config.json ------------------------------------------------------------------
@pytest.mark.parametrize("content", ["", "{not json", "[]"])
def test_broken_config_json_names_the_file(content, trained_run):
    (trained_run / "config.json").write_text(content)
    config = str(trained_run / "config.json")
    one_line_error(invoke("evaluate", "--run", str(trained_run), "--metric", "test_error"), config)
    one_line_error(invoke("figures", "--run", str(trained_run)), config)
    one_line_error(invoke(*train_args("--epochs", "2", run_dir=trained_run)), config)


# ---- accepted nonsense ------------------------------------------------------------------------------------
@pytest.mark.parametrize("epochs", ["-3", "0"])
def test_train_epochs_must_be_positive(epochs, tmp_path, loads):
    one_line_error(invoke(*train_args("--epochs", epochs, run_dir=tmp_path / "run")), "--epochs", epochs)
    assert loads == [] and not (tmp_path / "run").exists()


def test_runspec_refuses_negative_epochs(tmp_path, fake_data):
    from segma_bench.evaluation.classification import train
    from segma_bench.training import RunSpec
    with pytest.raises(ValueError, match="epochs"):
        train(RunSpec(method="segma", dataset="fake", epochs=-3, progress=False), tmp_path / "run", data=fake_data)
    assert not (tmp_path / "run").exists()


def test_reproduce_seeds_zero_is_refused(loads):
    one_line_error(invoke("reproduce", "--table", "2", "--dataset", "fake-cli", "--seeds", "0"), "--seeds")
    assert loads == []
    assert "budget's (quick and comparable: 2" in " ".join(invoke("reproduce", "--help").output.split())


def test_evaluate_negative_fid_samples(trained_run, loads):
    one_line_error(invoke("evaluate", "--run", str(trained_run), "--fid-samples", "-5"), "--fid-samples", "-5")
    assert loads == []


def test_unknown_command_and_bad_option_are_one_line():
    one_line_error(invoke("trian"), "trian", "--help")
    one_line_error(invoke("train", "--method"), "--method")


# ---- tracebacks on request ----------------------------------------------------------------------------------
def test_segma_debug_shows_the_traceback(tmp_path, trained_run):
    (trained_run / "config.json").write_text("")
    plain = invoke("evaluate", "--run", str(trained_run))
    assert plain.exit_code == 1 and isinstance(plain.exception, SystemExit)
    debug = invoke("evaluate", "--run", str(trained_run), env={"SEGMA_DEBUG": "1"})
    assert debug.exit_code == 1 and type(debug.exception).__name__ == "RunFolderError"


# ---- --help shows examples everywhere ---------------------------------------------------------------------------
def test_every_command_help_shows_an_example():
    assert "Examples:" in invoke("--help").output
    for name, command in cli.commands.items():
        result = invoke(name, "--help")
        assert result.exit_code == 0, name
        examples = result.output.split("Examples:")
        assert len(examples) == 2, f"`{name} --help` has no examples (add them to cli_help.py)"
        assert "python cli.py" in examples[1] and name in examples[1], name
