"""Typed keys of what the application and its requests carry."""

from __future__ import annotations

from typing import TYPE_CHECKING

import asyncpg
from aiohttp import web
from nats.aio.client import Client as NatsClient

from spendwatch.api.settings import ApiSettings
from spendwatch.api.slack import SlackRequestVerifier

if TYPE_CHECKING:
    from spendwatch.api.auth import Principal

SETTINGS = web.AppKey("settings", ApiSettings)
DB = web.AppKey("db", asyncpg.Pool)
NATS = web.AppKey("nats", NatsClient)
# None when SLACK_SIGNING_SECRET is not set: the Slack endpoint answers 503.
SLACK_VERIFIER: web.AppKey[SlackRequestVerifier | None] = web.AppKey("slack_verifier")

REQUEST_ID = web.RequestKey("request_id", str)
# Who made the request (set by the auth middleware on every protected path).
PRINCIPAL: web.RequestKey[Principal] = web.RequestKey("principal")
