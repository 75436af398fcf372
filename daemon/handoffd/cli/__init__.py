"""``handoffctl``: everything a person types."""
