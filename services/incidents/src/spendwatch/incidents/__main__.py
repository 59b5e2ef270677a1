"""`python -m spendwatch.incidents`."""

from spendwatch.incidents.main import main

main()
