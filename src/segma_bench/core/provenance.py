"""The software versions and suite commit that every run folder and record stores."""
import platform
import subprocess
from pathlib import Path


def software_versions():
    import numpy
    import pytorch_fid
    import scipy
    import torch
    import torchvision
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=Path(__file__).parent, timeout=5).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        commit = None
    return {"python": platform.python_version(), "torch": torch.__version__, "torchvision": torchvision.__version__,
            "pytorch_fid": pytorch_fid.__version__, "numpy": numpy.__version__, "scipy": scipy.__version__,
            "suite_commit": commit}
