"""The spendwatch exception tree shared by all packages.

SpendwatchError
├── ConfigError            settings are missing or invalid
├── InvalidPayloadError    a message cannot be decoded or validated (goes to the DLQ)
├── MessagingError         NATS is unreachable or refused an operation
├── DatabaseError          PostgreSQL is unreachable or refused an operation
│   └── MigrationError     a migration failed; nothing after it was applied
└── LocalStackError        a local server (nats-server, PostgreSQL) could not start
    └── PortInUseError     the port it needs is taken
"""

from __future__ import annotations


class SpendwatchError(Exception):
    """Base of every error spendwatch raises on purpose."""


class ConfigError(SpendwatchError):
    """Settings are missing or invalid."""


class InvalidPayloadError(SpendwatchError):
    """A message cannot be decoded or validated; it belongs in the dead-letter stream."""


class MessagingError(SpendwatchError):
    """NATS is unreachable or refused an operation."""


class DatabaseError(SpendwatchError):
    """PostgreSQL is unreachable or refused an operation."""


class MigrationError(DatabaseError):
    """A migration failed; it and everything after it were rolled back."""


class LocalStackError(SpendwatchError):
    """A local server could not be started."""


class PortInUseError(LocalStackError):
    """The port a local server needs is already taken."""
