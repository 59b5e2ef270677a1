"""`python -m spendwatch.detector`."""

from spendwatch.detector.main import main

main()
