"""The one error type the CLI turns into a one-line message and a non-zero exit."""


class PreviewInputError(Exception):
    """Bad input the user can fix: a missing file, a corrupt checkpoint, an impossible option.

    The message is one line that says what is wrong and what to do about it.
    """
