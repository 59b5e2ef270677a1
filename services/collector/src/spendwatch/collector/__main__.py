"""`python -m spendwatch.collector`."""

from spendwatch.collector.main import main

main()
