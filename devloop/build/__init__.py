"""Build: images from service build contexts, content-addressed tags, push or load."""
