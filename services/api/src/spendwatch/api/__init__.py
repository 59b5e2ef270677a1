"""spendwatch api service."""
