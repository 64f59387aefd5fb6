"""The web dashboard of `devloop dev`: fed by the event stream, served on loopback only."""
