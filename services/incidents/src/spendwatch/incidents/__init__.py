"""spendwatch incidents service."""
