"""Fixtures shared by the integration tests: fake third parties as real local HTTP servers."""

from tests.fakes.resend import fake_resend
from tests.fakes.slack import fake_slack

__all__ = ["fake_resend", "fake_slack"]
