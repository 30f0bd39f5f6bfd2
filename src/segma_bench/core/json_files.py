"""Reading the suite's JSON files strictly: a file that does not parse, or that holds a number that is not
finite (NaN, Infinity, or a literal such as 1e999 that Python's json turns into inf), is refused with one line
naming the file and the place in it, instead of reaching a table or a fit as NaN or inf."""
import json
import math
from pathlib import Path

from .errors import BadValueError


class JSONFileError(BadValueError):
    """A JSON file the suite reads is not valid JSON, or holds a number that is not finite."""


def _refuse_constant(name):
    raise ValueError(f"{name} is not a finite number")


def non_finite_places(value, where="$"):
    """Where (a JSONPath-like `$.metrics.sample_fid`) `value` holds a number that is not finite; ints too
    large to be a float count as such."""
    if isinstance(value, bool):
        return []
    if isinstance(value, float):
        return [] if math.isfinite(value) else [where]
    if isinstance(value, int):
        try:
            float(value)
        except OverflowError:
            return [where]
        return []
    if isinstance(value, dict):
        return [place for key, item in value.items() for place in non_finite_places(item, f"{where}.{key}")]
    if isinstance(value, list):
        return [place for index, item in enumerate(value) for place in non_finite_places(item, f"{where}[{index}]")]
    return []


def loads_finite(text, source):
    """json.loads that refuses NaN, Infinity and overflowing numbers; `source` names the file in errors."""
    try:
        value = json.loads(text, parse_constant=_refuse_constant)
    except ValueError as error:  # JSONDecodeError, and the NaN/Infinity refusal above
        raise JSONFileError(f"{source} is not valid JSON with finite numbers ({error})") from error
    places = non_finite_places(value)
    if places:
        raise JSONFileError(f"{source} holds a number that is not finite at {', '.join(places[:5])}"
                            + (f" and {len(places) - 5} more places" if len(places) > 5 else ""))
    return value


def read_json_file(path):
    """The parsed content of `path`, strictly (see loads_finite); a file that is not UTF-8 is refused too."""
    path = Path(path)
    try:
        text = path.read_text()
    except UnicodeDecodeError as error:
        raise JSONFileError(f"{path} is not a text file ({error})") from error
    return loads_finite(text, str(path))
