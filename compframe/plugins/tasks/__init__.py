"""Tasks: what a job does with the plugins it is given."""
