"""Events of the customer-record audit trail, on topic ``complaints.record-reads``.

Seed 004 (篇三 第四章) makes viewing a customer file without approval an offence, so every
read of one is recorded: who, when, which record, why, and whether it was allowed. Intake
publishes its reads here (through its outbox, in the transaction that recorded them);
reporting keeps them with its own and lists them to auditors.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from shared.contracts.base import Event


class CustomerRecordRead(Event):
    """Someone read, or was refused, a complaint's customer record."""

    EVENT_TYPE: ClassVar[str] = "CustomerRecordRead"
    event_type: Literal["CustomerRecordRead"] = "CustomerRecordRead"

    reader: str = Field(description="'staff:<id>' or 'branch:<branch id>'.")
    reader_roles: tuple[str, ...] = ()
    reason: str = Field(max_length=500, description="Why, as the reader gave it.")
    outcome: Literal["read", "refused"]
    contacts_shown: bool = Field(description="Whether phone and e-mail were shown in clear.")
    service: str = Field(description="The service that served (or refused) the read.")
