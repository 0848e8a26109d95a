"""Data sources (``DataSource``): each yields ``Field``s, arrays with their coordinates."""
