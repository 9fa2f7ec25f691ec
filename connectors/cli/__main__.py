"""`python -m connectors.cli ...`: the same as `inbeeld-connector ...`."""

from connectors.cli import main

main()
