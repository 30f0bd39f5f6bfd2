"""Error types the command line turns into one clear line (see segma_bench.cli.errors).

Only these (and the OS errors named there) become one line: any other exception is a bug and keeps its
traceback."""


class UserError(Exception):
    """Base of every failure caused by the user's input or files: bad names, bad values, missing files."""


class UnknownNameError(UserError, KeyError):
    """An unknown method, dataset or table name; the message lists the valid ones."""

    def __str__(self):  # KeyError would print the message with quotes around it
        return self.args[0]


class BadValueError(UserError, ValueError):
    """A value out of range or of the wrong kind (a setting, a count, a record field)."""
