"""The notifier's exceptions.

SpendwatchError                  (spendwatch.common.errors; ConfigError for bad settings)
└── NotifierError                something the notifier could not do
    ├── DeliveryError            a channel did not take a message: recorded as failed, retried
    │   ├── SlackError           the Slack Web API refused the call or could not be reached
    │   └── EmailError           Resend or the SMTP server refused the mail or could not be reached
    └── DeliveryBusyError        another consumer is delivering the same message right now
"""

from __future__ import annotations

from spendwatch.common.errors import SpendwatchError


class NotifierError(SpendwatchError):
    """Base of the notifier's own errors."""


class DeliveryError(NotifierError):
    """A channel did not take a message; the delivery log records it and it is retried."""

    channel: str = "unknown"


class SlackError(DeliveryError):
    """The Slack Web API refused the call (after the SDK's retries) or could not be reached."""

    channel = "slack"


class EmailError(DeliveryError):
    """Resend or the SMTP server refused the mail or could not be reached."""

    channel = "email"


class DeliveryBusyError(NotifierError):
    """Another consumer holds this delivery; try again shortly (it is never sent twice)."""
