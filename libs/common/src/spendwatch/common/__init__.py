"""Shared contracts and infrastructure for spendwatch services."""
