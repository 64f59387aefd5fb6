"""The built-in archetypes, shipped inside the wheel as devloop.templates."""
