"""AsyncAPI 3.0 documents for each service, built from the contracts and the topic table.

Our subscribers receive raw bytes (so undecodable messages can be dead-lettered),
which would leave FastStream's generator without payload schemas; the contracts
are the single source of truth, so the documents are generated from them.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from shared.contracts import MESSAGES_BY_TOPIC_ROLE
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


def message_name(model: type[BaseModel]) -> str:
    name: str = getattr(model, "EVENT_TYPE", model.__name__)
    return name


def service_document(
    service: str,
    description: str,
    *,
    publishes: tuple[Topic, ...],
    subscribes: tuple[Topic, ...],
) -> dict[str, Any]:
    topics = list(publishes) + list(subscribes)
    events = sorted(
        {model for topic in topics for model in MESSAGES_BY_TOPIC_ROLE[topic.role]},
        key=message_name,
    )
    _, schemas = models_json_schema(
        [(event, "serialization") for event in events],
        ref_template="#/components/schemas/{model}",
    )
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for topic in topics:
        channel = _channel_id(topic)
        channel_events = MESSAGES_BY_TOPIC_ROLE[topic.role]
        channels[channel] = {
            "address": topic.name,
            "description": f"{topic.description} {topic.partitions} partitions, keyed by "
            f"{topic.key}; messages that cannot be processed go to {topic.dead_letter}.",
            "messages": {
                message_name(m): {"$ref": f"#/components/messages/{message_name(m)}"}
                for m in channel_events
            },
        }
        action = "send" if topic in publishes else "receive"
        operations[f"{action}_{channel}"] = {
            "action": action,
            "channel": {"$ref": f"#/channels/{channel}"},
            "messages": [
                {"$ref": f"#/channels/{channel}/messages/{message_name(m)}"} for m in channel_events
            ],
        }
    messages = {
        message_name(event): {
            "name": message_name(event),
            "title": message_name(event),
            "summary": (event.__doc__ or message_name(event)).strip().splitlines()[0],
            "contentType": "application/json",
            "headers": HEADERS_SCHEMA,
            "payload": {"$ref": f"#/components/schemas/{event.__name__}"},
            "bindings": {"kafka": {"key": {"type": "string", "description": "See the channel."}}},
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
