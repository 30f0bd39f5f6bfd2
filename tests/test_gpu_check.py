"""benchmarks/gpu_check.py in its skip mode (what runs without a GPU), and the pieces of its report."""
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "gpu_check.py"


def load_script():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_skip_mode_says_what_it_skipped_and_writes_the_report(tmp_path):
    out = tmp_path / "report"
    done = subprocess.run([sys.executable, str(SCRIPT), "--skip-gpu", "--out", str(out), "--work", str(tmp_path / "w")],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads((out / "gpu_check.json").read_text())
    assert report["format"] == 1 and report["mode"] == "skip" and report["seconds"] < 60
    checks = {check["name"]: check for check in report["checks"]}
    assert list(checks) == ["environment", "device_tests", "segma_epochs", "fid_features", "reproduce_cell",
                            "resume_after_kill"]
    assert checks["environment"]["status"] == "passed" and report["environment"]["torch"]
    for name in list(checks)[1:]:
        assert checks[name]["status"] == "skipped" and "skipped: --skip-gpu" in checks[name]["summary"], name
    dry = checks["fid_features"]["details"]["cpu_dry_run"]  # the FID check's code ran on the CPU
    assert dry["within_tolerance"] and dry["largest_feature"] > 1  # seeded random weights keep features O(1)+
    assert report["summary"] == {"passed": 1, "failed": 0, "skipped": 5, "error": 0}
    markdown = (out / "gpu_check.md").read_text()
    assert "# GPU check (skip mode)" in markdown and "| 5. one reproduce cell end to end on CUDA | skipped |" in markdown
    assert (out / "gpu_check_logs.txt").is_file()


def test_device_tests_are_found_and_their_outcomes_read(tmp_path):
    gpu_check = load_script()
    files = gpu_check.device_test_files()
    assert "tests/test_devices.py" in files and "tests/test_training.py" in files
    xml = tmp_path / "results.xml"
    xml.write_text('<testsuites><testsuite><testcase classname="tests.test_a" name="ok"/>'
                   '<testcase classname="tests.test_a" name="bad"><failure message="x"/></testcase>'
                   '<testcase classname="tests.test_b" name="gpu"><skipped message="needs a CUDA GPU"/></testcase>'
                   '</testsuite></testsuites>')
    assert gpu_check.junit_outcomes(xml) == {"tests.test_a::ok": "passed", "tests.test_a::bad": "failed",
                                             "tests.test_b::gpu": "skipped"}


def test_the_report_counts_and_renders_failures(tmp_path):
    gpu_check = load_script()
    failed = gpu_check.Check("fid_features", "4. FID").result("failed", "1e-3 > 1e-4", comparisons={"mnist": 1})
    report = {"mode": "gpu", "started": "now", "command": "gpu_check.py", "seconds": 3.0,
              "environment": {"gpu_name": "NVIDIA H200"}, "checks": [failed.as_dict()]}
    report["summary"] = gpu_check.counts(report["checks"])
    assert report["summary"]["failed"] == 1
    path = gpu_check.write_report(tmp_path, report, {"a log": "text"})
    text = path.read_text()
    assert "| 4. FID | failed |" in text and '- comparisons: {"mnist": 1}' in text and "| gpu_name | NVIDIA H200 |" in text
