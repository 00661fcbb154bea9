"""Events produced by intake, on topic ``complaints.intake``."""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, EmailStr, Field

from shared.contracts.base import Event


class Channel(StrEnum):
    """Where a complaint came in (受理渠道)."""

    PHONE = "phone"
    EMAIL = "email"
    WEB = "web"
    WALK_IN = "walk_in"
    LETTER = "letter"
    FAX = "fax"
    SUGGESTION_BOX = "suggestion_box"
    SMS = "sms"
    WECHAT = "wechat"


class CustomerType(StrEnum):
    IN_HOUSE_GUEST = "in_house_guest"
    DEPARTED_GUEST = "departed_guest"
    MEMBER = "member"
    OWNER = "owner"
    DEALER = "dealer"
    END_CUSTOMER = "end_customer"


class Severity(StrEnum):
    NORMAL = "normal"
    URGENT = "urgent"
    MAJOR = "major"


class Region(StrEnum):
    DOMESTIC = "domestic"
    FOREIGN = "foreign"


class Language(StrEnum):
    ZH = "zh"
    EN = "en"


class Customer(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    name: str = Field(min_length=1, max_length=200)
    phone: str | None = Field(default=None, max_length=40)
    email: EmailStr | None = None
    company: str | None = Field(default=None, max_length=200)
    type: CustomerType
    language: Language = Language.ZH


class ComplaintReceived(Event):
    """A complaint was accepted, numbered and durably recorded."""

    EVENT_TYPE: ClassVar[str] = "ComplaintReceived"
    event_type: Literal["ComplaintReceived"] = "ComplaintReceived"

    received_at: AwareDatetime
    pack: str
    pack_version: str
    channel: Channel
    customer: Customer
    description: str
    customer_request: str | None = None
    category: str
    severity: Severity
    region: Region
    first_contact_staff: str | None = None
