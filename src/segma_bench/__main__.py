"""`python -m segma_bench ...`: the same command line as `segma-bench` and `python cli.py`."""
from segma_bench.cli.main import main

main()
