"""The metrics the harness computes (Tables I-III, with KID beside each FID), by the names records use."""
METRICS = ("test_error", "sample_fid", "interpolation_fid", "sample_kid", "interpolation_kid")
# Each image metric and the KID computed from the same generated images' Inception features.
KID_OF_FID = {"sample_fid": "sample_kid", "interpolation_fid": "interpolation_kid"}
