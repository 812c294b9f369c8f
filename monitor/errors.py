"""UserError: bad input from a person. The CLI prints its message on one line and exits non-zero."""


class UserError(Exception):
    """A problem with what the user gave us (file, flag, photo, booking): never a traceback."""
