"""Does this path count: ignore rules, .dockerignore, editor temp files, sync globs."""
