"""compframe's built-in plugins, one package per kind; importing this registers them all."""

from . import data, encoders, quantizers, schedules, tasks  # noqa: F401
