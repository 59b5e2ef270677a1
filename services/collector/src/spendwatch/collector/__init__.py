"""spendwatch collector service."""
