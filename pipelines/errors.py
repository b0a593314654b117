"""The one base class for errors written for a person, and the errors of the jobs that several layers raise.

The CLI prints such an error's message alone (no traceback) and exits 2; every
job module raises a subclass of it at the boundary where the problem is known.
"""


class UserError(Exception):
    """What is wrong and what to do, naming the file, field, column or row."""


class TrainingError(UserError, RuntimeError):
    """A training job that could not run or finish; the message says why and what to do."""


class SweepError(UserError, RuntimeError):
    """A sweep that cannot run or produced nothing to register; the message says why and what to do."""


class BatchJobError(UserError, RuntimeError):
    """A batch job that could not run or finish; the message says why and what to do."""
