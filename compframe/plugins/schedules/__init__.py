"""Error-bound schedules (``Schedule``): a bound per table and iteration."""
