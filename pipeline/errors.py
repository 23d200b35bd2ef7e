"""The one error type ``run.py`` turns into a one-line message and a non-zero exit."""


class PipelineError(Exception):
    """A job that cannot go on: bad inputs, a failed external program, a missing output.

    The message is one line that says what is wrong, in terms of the job root's files.
    """
