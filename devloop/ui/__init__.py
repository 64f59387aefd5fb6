"""What a person sees and steers while `devloop dev` runs: the terminal view and its keys, and
the web dashboard, both fed by the event stream."""
