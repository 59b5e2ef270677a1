"""The spendwatch command line."""
