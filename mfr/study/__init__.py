"""The study: its steps (arrays in, run folders out), the papermill runner, executors, search."""
