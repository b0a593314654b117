"""The one base class for errors written for a person.

The CLI prints such an error's message alone (no traceback) and exits 2; every
job module raises a subclass of it at the boundary where the problem is known.
"""


class UserError(Exception):
    """What is wrong and what to do, naming the file, field, column or row."""
