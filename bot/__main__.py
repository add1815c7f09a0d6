"""`python -m bot` is the `swarmbot` command."""

from bot.cli import main

main()
