"""Error-bound schedules (``Schedule``): a bound per table and iteration."""

from . import decay  # noqa: F401
