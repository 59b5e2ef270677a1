"""spendwatch detector service."""
