"""Subcommands of the ``amc`` command line, one module each."""


class UsageError(Exception):
    """Bad user input: printed as one message, exit code 2, no traceback and no output files."""
