"""What every stage shares: the config, errors, run records and outputs, progress, numerics."""
