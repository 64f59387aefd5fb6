"""Build: image inputs -> digest tag -> build (BuildKit when present) -> push or load -> report."""
