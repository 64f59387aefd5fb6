"""`python -m devloop`."""

from devloop.cli import main

main()
