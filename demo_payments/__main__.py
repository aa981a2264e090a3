"""`python -m demo_payments [--http --port N]`."""

from demo_payments.server import main

main()
