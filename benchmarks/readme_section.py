"""Each benchmark owns one marked section of benchmarks/README.md and replaces only that section."""
from pathlib import Path

README = Path(__file__).resolve().parent / "README.md"


def write_section(name, report, readme=README):
    """Put `report` between `<!-- NAME results: begin -->` and its end marker (added if absent); atomic."""
    from segma_bench.core.storage import atomic_write_text
    begin, end = f"<!-- {name} results: begin -->", f"<!-- {name} results: end -->"
    text = readme.read_text() if readme.is_file() else "# Benchmarks\n"
    if begin not in text or end not in text:
        text += f"\n{begin}\n{end}\n"
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    atomic_write_text(readme, f"{head}{begin}\n{report}\n{end}{tail}")
    print(f"written into {readme}")


def load_average():
    """The 1-minute load average (nan where the platform has none): what else ran beside the benchmark."""
    import os
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


def publish(name, lead, header, rows, readme=True):
    """Print a benchmark's report (a lead sentence, then a markdown table of `header` and `rows`) and, unless
    `readme` is false, put it into its section of benchmarks/README.md."""
    report = "\n".join([lead, "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header), *rows])
    print(report)
    if readme:
        write_section(name, report)
