"""`python -m spendwatch.simulator`."""

from spendwatch.simulator.main import main

main()
