"""Tasks: what a job does with the plugins it is given."""

from . import benchmark  # noqa: F401
