"""spendwatch notifier service."""
