"""The metrics the harness computes (Tables I-III, with KID, precision and recall beside each FID), by the
names records use."""
METRICS = ("test_error", "sample_fid", "interpolation_fid", "sample_kid", "interpolation_kid",
           "sample_precision", "sample_recall", "interpolation_precision", "interpolation_recall")
# Each image metric and the KID computed from the same generated images' Inception features.
KID_OF_FID = {"sample_fid": "sample_kid", "interpolation_fid": "interpolation_kid"}
# Each image metric and the precision and recall (evaluation/prc.py) of the same generated images' features.
PRC_OF_FID = {"sample_fid": ("sample_precision", "sample_recall"),
              "interpolation_fid": ("interpolation_precision", "interpolation_recall")}
