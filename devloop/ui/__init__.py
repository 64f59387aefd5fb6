"""What a person sees and presses while `devloop dev` runs: the terminal view and its keys."""
