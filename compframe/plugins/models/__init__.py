"""Model sources (kind ``model``): a trained torch model with its data and task metric."""
