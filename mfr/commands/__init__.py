"""CLI subcommands (see mfr.cli)."""
