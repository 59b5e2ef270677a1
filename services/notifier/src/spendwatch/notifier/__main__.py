"""`python -m spendwatch.notifier`."""

from spendwatch.notifier.main import main

main()
