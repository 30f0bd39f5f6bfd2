"""Progress bars are drawn on a terminal only: a log file would get one line per frame."""
import io
import sys

from segma_bench.core.progress import on_terminal


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_a_bar_is_drawn_on_a_terminal_only_and_only_when_wanted(monkeypatch):
    monkeypatch.setattr(sys, "stderr", Terminal())
    assert on_terminal(True) and not on_terminal(False)
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # a file: isatty() is False
    assert not on_terminal(True)
    monkeypatch.setattr(sys, "stderr", None)  # pythonw, some daemons
    assert not on_terminal(True)


def test_fid_features_write_no_bar_frames_to_a_log_file(monkeypatch, capsys):
    import torch

    from segma_bench.evaluation import inception
    extractor = inception.FeatureExtractor.__new__(inception.FeatureExtractor)
    extractor.device, extractor.batch_size, extractor.progress = torch.device("cpu"), 2, True
    extractor.model = lambda batch: torch.zeros(len(batch), inception.FEATURE_DIMS)
    monkeypatch.setattr(inception, "PROGRESS_DELAY_S", 0)
    extractor(torch.rand(4, 1, 8, 8))
    assert "FID features" not in capsys.readouterr().err  # captured: not a terminal
