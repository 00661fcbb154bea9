"""AsyncAPI 3.0 documents for each service, built from the contracts and the topic table.

Our subscribers receive raw bytes (so undecodable messages can be dead-lettered),
which would leave FastStream's generator without payload schemas; the contracts
are the single source of truth, so the documents are generated from them.
"""

from __future__ import annotations

from typing import Any

from pydantic.json_schema import models_json_schema

from shared.contracts import EVENTS_BY_PRODUCER, Event
from shared.topics import Topic

HEADERS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "event_type": {"type": "string", "description": "The event's type, as in the body."},
        "schema_version": {"type": "string", "description": "The body's schema version."},
        "correlation_id": {"type": "string", "description": "The submission's correlation id."},
    },
}


def _channel_id(topic: Topic) -> str:
    return topic.name.replace(".", "_")


def service_document(
    service: str, description: str, *, publishes: Topic | None, subscribes: tuple[Topic, ...]
) -> dict[str, Any]:
    topics = ([publishes] if publishes else []) + list(subscribes)
    events = sorted(
        {event for topic in topics for event in EVENTS_BY_PRODUCER[topic.producer]},
        key=lambda event: event.EVENT_TYPE,
    )
    _, schemas = models_json_schema(
        [(event, "serialization") for event in events],
        ref_template="#/components/schemas/{model}",
    )
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for topic in topics:
        channel = _channel_id(topic)
        channel_events: tuple[type[Event], ...] = EVENTS_BY_PRODUCER[topic.producer]
        channels[channel] = {
            "address": topic.name,
            "description": f"{topic.description} {topic.partitions} partitions, keyed by "
            f"complaint number; undecodable messages go to {topic.dead_letter}.",
            "messages": {
                e.EVENT_TYPE: {"$ref": f"#/components/messages/{e.EVENT_TYPE}"}
                for e in channel_events
            },
        }
        action = "send" if topic is publishes else "receive"
        operations[f"{action}_{channel}"] = {
            "action": action,
            "channel": {"$ref": f"#/channels/{channel}"},
            "messages": [
                {"$ref": f"#/channels/{channel}/messages/{e.EVENT_TYPE}"} for e in channel_events
            ],
        }
    messages = {
        event.EVENT_TYPE: {
            "name": event.EVENT_TYPE,
            "title": event.EVENT_TYPE,
            "summary": (event.__doc__ or event.EVENT_TYPE).strip().splitlines()[0],
            "contentType": "application/json",
            "headers": HEADERS_SCHEMA,
            "payload": {"$ref": f"#/components/schemas/{event.__name__}"},
            "bindings": {
                "kafka": {"key": {"type": "string", "description": "The complaint number."}}
            },
        }
        for event in events
    }
    return {
        "asyncapi": "3.0.0",
        "info": {"title": f"{service} service", "version": "1", "description": description},
        "defaultContentType": "application/json",
        "servers": {
            "development": {
                "host": "127.0.0.1:9092",
                "protocol": "kafka",
                "description": "The local broker that `make run` starts.",
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": schemas.get("$defs", {})},
    }
