"""`python cli.py ...` in a checkout: a thin shim over the installed package's command line (`segma-bench`).

Install the package first (`pip install -r requirements.txt`, which installs this checkout editable)."""
try:
    from segma_bench.cli.main import main
except ModuleNotFoundError as error:
    if error.name and error.name.split(".")[0] == "segma_bench":
        raise SystemExit("Error: the segma_bench package is not installed; run `pip install -r requirements.txt` "
                         "(or `pip install -e .`) in this checkout first.") from None
    raise

if __name__ == "__main__":
    main()
