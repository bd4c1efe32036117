"""`python -m tallyboard.cli`: the same as the `tallyboard` command."""

from . import main

main()
