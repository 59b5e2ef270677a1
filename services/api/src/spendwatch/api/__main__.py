"""`python -m spendwatch.api`."""

from spendwatch.api.main import main

main()
