"""Subjects, streams, consumers, publishing and dead-lettering on NATS JetStream."""

from spendwatch.common.messaging import subjects
from spendwatch.common.messaging.broker import make_broker
from spendwatch.common.messaging.consumer import BatchConsumer, ConsumerSpec, ensure_consumer
from spendwatch.common.messaging.dlq import (
    DeadLetterMiddleware,
    dead_letter,
    dead_letter_payload,
    describe,
)
from spendwatch.common.messaging.publish import MSG_ID, encode, publish_event, publish_many
from spendwatch.common.messaging.streams import ALL_STREAMS, StreamSpec, ensure_streams

__all__ = [
    "ALL_STREAMS",
    "MSG_ID",
    "BatchConsumer",
    "ConsumerSpec",
    "DeadLetterMiddleware",
    "StreamSpec",
    "dead_letter",
    "dead_letter_payload",
    "describe",
    "encode",
    "ensure_consumer",
    "ensure_streams",
    "make_broker",
    "publish_event",
    "publish_many",
    "subjects",
]
