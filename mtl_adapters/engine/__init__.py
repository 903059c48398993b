"""Engine: hooks."""
