"""Evaluation harness: FID (evaluation.fid, evaluation.inception) and the other metrics of the paper."""
