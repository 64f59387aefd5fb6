"""One module per command: plain functions that take explicit arguments and return an exit code."""
