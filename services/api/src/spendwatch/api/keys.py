"""Typed keys of what the application and its requests carry."""

from __future__ import annotations

import asyncpg
from aiohttp import web
from nats.aio.client import Client as NatsClient

from spendwatch.api.settings import ApiSettings
from spendwatch.api.slack import SlackRequestVerifier

SETTINGS = web.AppKey("settings", ApiSettings)
DB = web.AppKey("db", asyncpg.Pool)
NATS = web.AppKey("nats", NatsClient)
# None when SLACK_SIGNING_SECRET is not set: the Slack endpoint answers 503.
SLACK_VERIFIER: web.AppKey[SlackRequestVerifier | None] = web.AppKey("slack_verifier")

REQUEST_ID = web.RequestKey("request_id", str)
