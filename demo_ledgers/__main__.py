"""`python -m demo_ledgers [--http --port N]`."""

from demo_ledgers.server import main

main()
