"""segma-bench: a reproduction and benchmark suite for semi-supervised deep generative models, built
around SeGMA (Śmieja et al.). `segma-bench --help` (or `python cli.py --help` in a checkout) lists the
commands; plugins import from `segma_bench.api`."""
__version__ = "0.5.0"
