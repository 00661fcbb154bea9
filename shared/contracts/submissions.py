"""What branch systems send, over HTTP or the ``…submitted`` topic, and what they read back.

A submission is validated the same way whichever path it takes. Free text accepts
Chinese, English and any other script, and line breaks and tabs, but no other
control characters; identifiers and names accept no control characters at all.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, ClassVar, Literal, Self

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    model_validator,
)

_TEXT_CONTROLS_ALLOWED = frozenset("\n\r\t")
_PHONE = re.compile(r"^\+?[0-9][0-9 ()\-]*[0-9]$")


def _no_controls(allowed: frozenset[str]) -> AfterValidator:
    def check(value: str) -> str:
        for char in value:
            if unicodedata.category(char) in ("Cc", "Cf", "Cs") and char not in allowed:
                raise ValueError(f"control character U+{ord(char):04X} is not allowed")
        return value

    return AfterValidator(check)


def _phone(value: str) -> str:
    digits = sum(c.isdigit() for c in value)
    if _PHONE.match(value) is None or not 6 <= digits <= 15:
        raise ValueError("not a phone number: digits, optionally +, spaces, dashes, brackets")
    return value


Line = Annotated[str, Field(min_length=1, max_length=200), _no_controls(frozenset())]
Text = Annotated[str, Field(min_length=1, max_length=20_000), _no_controls(_TEXT_CONTROLS_ALLOWED)]
ShortText = Annotated[
    str, Field(min_length=1, max_length=2_000), _no_controls(_TEXT_CONTROLS_ALLOWED)
]
Identifier = Annotated[
    str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:\-]*$")
]
Phone = Annotated[str, Field(max_length=40), AfterValidator(_phone)]
Money = Annotated[Decimal, Field(ge=0, max_digits=14, decimal_places=2)]


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


class Confidentiality(StrEnum):
    """Seed 004's three levels of customer file (篇三 第四章), most to least widely held:
    company files for the company's managers, department files for the department,
    personal files for the person handling the case and their managers."""

    COMPANY = "company"
    DEPARTMENT = "department"
    PERSONAL = "personal"


class Region(StrEnum):
    DOMESTIC = "domestic"
    FOREIGN = "foreign"


class Language(StrEnum):
    ZH = "zh"
    EN = "en"


class _Lenient(BaseModel):
    """Shapes inside events: unknown fields are ignored so that newer producers can add some."""

    model_config = ConfigDict(frozen=True, extra="ignore", str_strip_whitespace=True)


class Customer(_Lenient):
    name: Line
    phone: Phone | None = None
    email: EmailStr | None = Field(default=None, max_length=254)
    company: Line | None = None
    type: CustomerType
    language: Language = Language.ZH


class Product(_Lenient):
    """Product fields of a product complaint (000 第二篇 9(一))."""

    order_no: Line | None = Field(default=None, description="订单编号")
    lot_no: Line | None = Field(default=None, description="料号 / lot or part number")
    quantity: int | None = Field(default=None, ge=0)
    delivery_date: date | None = Field(default=None, description="交运日期")
    defective_quantity: int | None = Field(default=None, ge=0, description="不良数量")
    defective_quantity_undetermined: bool = Field(
        default=False, description="客户加工中未确定: the customer is still processing the lot."
    )

    @model_validator(mode="after")
    def _one_defective_answer(self) -> Self:
        if self.defective_quantity is not None and self.defective_quantity_undetermined:
            raise ValueError("give defective_quantity or mark it undetermined, not both")
        return self


class Attachment(_Lenient):
    """A file kept elsewhere (object storage, the branch's system), referenced by URI."""

    uri: Annotated[str, Field(max_length=2_000, pattern=r"^(https?|s3|oss|cos)://\S+$")]
    name: Line
    content_type: Line | None = None
    size_bytes: int | None = Field(default=None, ge=0)


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)


class CustomerIn(Customer, _Strict):
    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)


class ProductIn(Product, _Strict):
    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)


class AttachmentIn(Attachment, _Strict):
    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)


class SubmitComplaint(_Strict):
    """A complaint as a branch submits it: the intake record of 000 第二篇 9(一) and 004 4.2.2."""

    submission_id: Identifier | None = Field(
        default=None,
        description="The branch's id for this submission. Required on Kafka; over HTTP the "
        "Idempotency-Key header plays this part. A retry with the same id returns the same "
        "complaint.",
    )
    branch_id: Identifier
    channel: Channel
    customer: CustomerIn
    event_time: AwareDatetime | None = Field(default=None, description="When it happened.")
    event_place: Line | None = Field(default=None, description="Where it happened.")
    description: Text = Field(description="An objective description of what happened.")
    customer_request: ShortText | None = Field(default=None, description="客户要求")
    category: Identifier
    severity: Severity = Severity.NORMAL
    region: Region = Region.DOMESTIC
    product: ProductIn | None = None
    attachments: tuple[AttachmentIn, ...] = Field(default=(), max_length=20)
    first_contact_staff: Identifier | None = Field(
        default=None,
        description="The staff member who took the complaint (首问负责制); they own it to the end.",
    )
    confidentiality: Confidentiality | None = Field(
        default=None,
        description="Who may read the customer's record (seed 004); default: department.",
    )
    taken_at: AwareDatetime | None = Field(
        default=None,
        description="When the branch took the complaint, if before this submission (a branch "
        "that was offline sends later): its number and deadlines count from then. At most "
        "7 days back; default: now.",
    )

    def fingerprint(self) -> str:
        """Identifies the content, whichever path it came by and whatever id it carries."""
        canonical = self.model_dump_json(exclude={"submission_id"}, exclude_none=True)
        return hashlib.sha256(canonical.encode()).hexdigest()


class SubmissionOutcome(BaseModel):
    """What a branch reads back for each submission it sent over Kafka, keyed by branch id."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    EVENT_TYPE: ClassVar[str]

    event_id: uuid.UUID
    event_type: str
    schema_version: int = 1
    occurred_at: AwareDatetime = Field(default_factory=lambda: datetime.now(UTC))
    submission_id: str
    branch_id: str
    correlation_id: str
    producer: Literal["intake"] = "intake"

    @property
    def key(self) -> bytes:
        return self.branch_id.encode()

    def headers(self) -> dict[str, str]:
        return {
            "event_type": self.event_type,
            "schema_version": str(self.schema_version),
            "correlation_id": self.correlation_id,
        }


class SubmissionAccepted(SubmissionOutcome):
    EVENT_TYPE: ClassVar[str] = "SubmissionAccepted"
    event_type: Literal["SubmissionAccepted"] = "SubmissionAccepted"

    complaint_no: str
    duplicate: bool = Field(description="True when this was a retry of an accepted submission.")


class FieldError(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    loc: tuple[str | int, ...]
    msg: str


class SubmissionRejected(SubmissionOutcome):
    EVENT_TYPE: ClassVar[str] = "SubmissionRejected"
    event_type: Literal["SubmissionRejected"] = "SubmissionRejected"

    errors: tuple[FieldError, ...]
