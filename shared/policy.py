"""Policy packs: each organisation's rules as validated data, loaded from YAML.

A pack's version is a hash of its file's bytes, recorded on every decision made
with it. Loading fails with the file, the field and what is wrong.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Awaitable, Callable
from datetime import date, time
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Literal, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import structlog
import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from shared.calendars import Closure, HolidayCalendar, WorkingTime
from shared.contracts.submissions import Channel, CustomerType, Region, Severity

_SLUG = r"^[a-z][a-z0-9-]*$"
_E164 = r"^\+[1-9][0-9]{6,14}$"


class PolicyPackError(ValueError):
    """A policy-pack file that cannot be used, with where and why."""


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Label(_Model):
    zh: str = Field(min_length=1)
    en: str = Field(min_length=1)


def _check_timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {value!r}") from exc
    return value


class Branch(_Model):
    id: str = Field(pattern=_SLUG)
    name: Label
    timezone: str = "Asia/Shanghai"

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        return _check_timezone(value)


class Weekday(StrEnum):
    MON = "mon"
    TUE = "tue"
    WED = "wed"
    THU = "thu"
    FRI = "fri"
    SAT = "sat"
    SUN = "sun"


_SHIFT = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-4]):([0-5]\d)$")


def _parse_shift(text: str) -> tuple[time, time]:
    match = _SHIFT.match(text)
    if match is None:
        raise ValueError(f"shift {text!r} must look like 08:30-12:00")
    start = time(int(match.group(1)), int(match.group(2)))
    end_hour, end_minute = int(match.group(3)), int(match.group(4))
    end = time.max if end_hour == 24 else time(end_hour, end_minute)
    if end <= start:
        raise ValueError(f"shift {text!r} ends before it starts")
    return start, end


class ClosureSpan(_Model):
    """Days a branch is closed beyond public holidays (renovation, a local event)."""

    first: date = Field(alias="from")
    last: date = Field(alias="to")
    reason: str = Field(min_length=1)


class Calendar(_Model):
    """Working hours (001 5.2: Mon–Fri 08:30–12:00 and 13:00–17:00, Sat–Sun 09:00–17:00),
    public holidays and 调休 from a holiday calendar, and closures."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    id: str = Field(pattern=_SLUG)
    timezone: str = "Asia/Shanghai"
    weekly: dict[Weekday, tuple[str, ...]]
    holidays: str | None = Field(
        default="cn-mainland", description="A holiday calendar in policy-packs/calendars/."
    )
    closures: tuple[ClosureSpan, ...] = ()
    seed: str | None = None

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        return _check_timezone(value)

    @field_validator("weekly")
    @classmethod
    def _shifts_parse(cls, value: dict[Weekday, tuple[str, ...]]) -> dict[Weekday, tuple[str, ...]]:
        for shifts in value.values():
            for shift in shifts:
                _parse_shift(shift)
        return value

    def working_time(self, holidays: HolidayCalendar | None) -> WorkingTime:
        return WorkingTime(
            timezone=self.timezone,
            weekly=tuple(
                tuple(_parse_shift(shift) for shift in self.weekly.get(day, ())) for day in Weekday
            ),
            holidays=holidays,
            closures=tuple(Closure(c.first, c.last) for c in self.closures),
        )


class Staff(_Model):
    id: str = Field(pattern=_SLUG)
    name: str = Field(min_length=1)
    department: str
    role: str = Field(min_length=1)
    supervisor: str | None = None
    skills: tuple[str, ...] = ()
    capacity: int = Field(default=10, ge=1, description="Open cases this person can carry.")
    calendar: str | None = Field(default=None, description="Defaults to the pack's first.")
    approves_reassignment: bool = False
    available: bool = Field(
        default=True, description="False while away (leave, sickness): routing moves their cases."
    )
    email: EmailStr | None = Field(default=None, description="Where e-mail notifications go.")
    phone: str | None = Field(
        default=None, pattern=_E164, description="Where SMS notifications go, in E.164 form."
    )
    language: Literal["zh", "en"] = Field(default="zh", description="Language of their messages.")


class Match(_Model):
    """What a routing or notification rule matches; an empty list matches anything."""

    categories: tuple[str, ...] = ()
    severities: tuple[Severity, ...] = ()
    channels: tuple[Channel, ...] = ()
    customer_types: tuple[CustomerType, ...] = ()
    regions: tuple[Region, ...] = ()
    keywords: tuple[str, ...] = Field(
        default=(), description="Any of these in the description or request (case-insensitive)."
    )

    def matches(
        self,
        *,
        category: str,
        severity: Severity,
        channel: Channel,
        customer_type: CustomerType,
        region: Region,
        text: str,
    ) -> bool:
        folded = text.casefold()
        return (
            (not self.categories or category in self.categories)
            and (not self.severities or severity in self.severities)
            and (not self.channels or channel in self.channels)
            and (not self.customer_types or customer_type in self.customer_types)
            and (not self.regions or region in self.regions)
            and (not self.keywords or any(k.casefold() in folded for k in self.keywords))
        )


class RoutingRule(_Model):
    """The first rule whose ``when`` matches decides the department (and maybe the person)."""

    id: str = Field(pattern=_SLUG)
    when: Match = Match()
    department: str
    roles: tuple[str, ...] = Field(default=(), description="Only staff with these roles.")
    skill: str | None = Field(default=None, description="Only staff with this skill.")
    assignee: str | None = Field(default=None, description="This person, whatever the load.")
    also_notify: tuple[str, ...] = Field(
        default=(), description="Staff ids or department codes told of the case as well."
    )
    seed: str = Field(min_length=1)


class Department(_Model):
    code: str = Field(pattern=_SLUG)
    name: Label
    head: str
    webhook: str | None = Field(
        default=None,
        pattern=_SLUG,
        description="Name of the department's chat-bot webhook; its URL comes from notify's "
        "NOTIFY_WEBHOOK_URLS (or NOTIFY_WEBHOOK_BASE_URL/<name>).",
    )


class Category(_Model):
    code: str = Field(pattern=_SLUG)
    label: Label
    department: str = Field(description="Where the category goes when no routing rule matches.")
    seed: str = Field(min_length=1, description="Where in the source document the rule comes from.")


# Events a clock can start or stop on (intake's life-cycle events).
CLOCK_EVENTS = frozenset(
    {
        "ComplaintReceived",
        "ComplaintAcknowledged",
        "ComplaintAssignmentRecorded",
        "InvestigationStarted",
        "DecisionCommunicated",
        "ComplaintAnsweredOnSpot",
        "ComplaintNotUpheld",
        "ComplaintResolved",
        "ReturnVisitRecorded",
        "RepairedProductDelivered",
        "ProjectDelivered",
        "ComplaintClosed",
    }
)
# A case that ends stops every clock still running, return visits aside.
ENDING_EVENTS = ("ComplaintClosed", "ComplaintNotUpheld")


class Recurrence(_Model):
    """A phase of repeated return visits: every ``every_months`` months, for ``for_months``
    months (the last phase may run on without end)."""

    every_months: int = Field(ge=1)
    for_months: int | None = Field(default=None, ge=1)


class ClockRule(_Model):
    """A deadline: when it starts, how long it runs (elapsed or working time), what meets it.

    Exactly one of ``target_hours`` (elapsed), ``working_hours`` (working time on the
    calendar) and ``working_days`` (by the end of the n-th working day after the start
    day) gives the length.
    """

    id: str = Field(pattern=_SLUG)
    clock: str = Field(pattern=_SLUG)
    target_hours: float | None = Field(default=None, gt=0)
    working_hours: float | None = Field(default=None, gt=0)
    working_days: int | None = Field(
        default=None, ge=0, description="0: by the end of the start day's working time."
    )
    calendar: str | None = Field(default=None, description="Default: the pack's first.")
    starts_on: str = "ComplaintReceived"
    stops_on: tuple[str, ...] = Field(
        default=(), description="Events that meet the clock; closing the case always does."
    )
    return_visit: bool = Field(
        default=False, description="Due means a return visit is due: the owner is reminded."
    )
    warn_at: tuple[float, ...] = Field(
        default=(0.5, 0.8), description="Fractions of the target at which warnings go out."
    )
    recurrence: tuple[Recurrence, ...] = Field(
        default=(),
        description="Repeated return visits counted from the start (e.g. monthly for 12 "
        "months, then quarterly); replaces the length.",
    )
    categories: tuple[str, ...] = ()
    customer_types: tuple[CustomerType, ...] = ()
    severities: tuple[Severity, ...] = ()
    regions: tuple[Region, ...] = ()
    seed: str = Field(min_length=1)

    @model_validator(mode="after")
    def _one_length(self) -> Self:
        given = [self.target_hours, self.working_hours, self.working_days]
        if self.recurrence:
            if any(value is not None for value in given) or not self.return_visit:
                raise ValueError("a recurrence is a return-visit schedule, with no length")
            if any(phase.for_months is None for phase in self.recurrence[:-1]):
                raise ValueError("only the last recurrence phase may run without end")
        elif sum(value is not None for value in given) != 1:
            raise ValueError("give exactly one of target_hours, working_hours, working_days")
        for event in (self.starts_on, *self.stops_on):
            if event not in CLOCK_EVENTS:
                raise ValueError(
                    f"unknown event {event!r}; known: {', '.join(sorted(CLOCK_EVENTS))}"
                )
        if any(not 0 < fraction < 1 for fraction in self.warn_at):
            raise ValueError("warn_at fractions lie strictly between 0 and 1")
        return self

    @property
    def working(self) -> bool:
        return self.target_hours is None

    def matches(
        self, category: str, customer_type: CustomerType, severity: Severity, region: Region
    ) -> bool:
        return (
            (not self.categories or category in self.categories)
            and (not self.customer_types or customer_type in self.customer_types)
            and (not self.severities or severity in self.severities)
            and (not self.regions or region in self.regions)
        )


class EscalationLevel(_Model):
    """One rung of the ladder: who is told and takes over, and their authority."""

    level: int = Field(ge=1)
    to: tuple[str, ...] = Field(min_length=1, description="Staff ids or department codes.")
    after_hours: float | None = Field(
        default=None, ge=0, description="Hours after the previous rung (or the breach)."
    )
    max_compensation: Decimal | None = Field(
        default=None, ge=0, description="The most this rung may approve (核决权限); none: no limit."
    )
    seed: str = Field(min_length=1)


class Escalation(_Model):
    """Overdue and beyond-authority cases climb this ladder (000 第二篇; 003 六)."""

    ladder: tuple[EscalationLevel, ...] = Field(min_length=1)
    major_to_top: bool = Field(
        default=True, description="Major complaints and faults go to the top rung at once."
    )
    seed: str = Field(min_length=1)


# Events a notification rule can follow: the platform's events, and those the sla
# service will publish (warnings, breaches, due return visits).
NOTIFICATION_TRIGGERS = frozenset(
    {
        "ComplaintReceived",
        "ComplaintAssigned",
        "ComplaintAcknowledged",
        "DecisionCommunicated",
        "ComplaintAnsweredOnSpot",
        "ComplaintNotUpheld",
        "ComplaintEscalated",
        "ComplaintReopened",
        "ComplaintClosed",
        "FeedbackReceived",
        "ClockWarning",
        "ClockBreached",
        "ReturnVisitDue",
        "EscalationRaised",
    }
)
# Recipients by part: besides staff ids and department codes.
NOTIFICATION_ROLES = frozenset(
    {
        "customer",
        "assignee",
        "previous_assignee",
        "owner",
        "supervisor",
        "also_notify",
        "escalated_to",
    }
)


class NotificationRule(_Model):
    """Who hears of what, by which channels, with which template."""

    id: str = Field(pattern=_SLUG)
    event: str = Field(description="The event that triggers the rule.")
    when: Match = Match()
    to: tuple[str, ...] = Field(
        min_length=1,
        description="customer, assignee, previous_assignee, owner, supervisor, also_notify, "
        "escalated_to (an EscalationRaised rung), or staff ids and department codes "
        "(a department means its head, or its webhook on the webhook channel).",
    )
    channels: tuple[Literal["email", "sms", "webhook"], ...] = Field(min_length=1)
    template: str = Field(pattern=_SLUG)
    seed: str = Field(min_length=1)

    @field_validator("event")
    @classmethod
    def _known_trigger(cls, value: str) -> str:
        if value not in NOTIFICATION_TRIGGERS:
            raise ValueError(
                f"unknown event {value!r}; known: {', '.join(sorted(NOTIFICATION_TRIGGERS))}"
            )
        return value


class QuietHours(_Model):
    """No SMS to customers in these local hours unless the case is urgent; they wait."""

    start: time = time(21, 0)
    end: time = time(8, 0)
    seed: str = "platform default"


class PolicyPack(_Model):
    pack: str = Field(pattern=_SLUG)
    name: Label
    seed: str
    triage_department: str
    branches: tuple[Branch, ...] = Field(min_length=1)
    departments: tuple[Department, ...] = Field(min_length=1)
    staff: tuple[Staff, ...] = Field(min_length=1)
    categories: tuple[Category, ...] = Field(min_length=1)
    calendars: tuple[Calendar, ...] = Field(min_length=1)
    routing: tuple[RoutingRule, ...] = ()
    clocks: tuple[ClockRule, ...] = ()
    open_clocks_on_change: Literal["keep", "recompute"] = Field(
        default="keep",
        description="When this pack changes: open clocks keep the deadlines they started "
        "with (only new clocks follow the change), or running ones are recomputed.",
    )
    escalation: Escalation | None = None
    notifications: tuple[NotificationRule, ...] = ()
    quiet_hours: QuietHours = QuietHours()
    complaint_rate_target: float | None = Field(
        default=None,
        gt=0,
        lt=1,
        description="Complaints per service delivered the organisation aims to stay under.",
    )
    version: str = Field(default="", description="Set by the loader: hash of the file.")
    holiday_calendars: dict[str, HolidayCalendar] = Field(
        default={}, description="Set by the loader from policy-packs/calendars/."
    )

    @model_validator(mode="after")
    def _references_resolve(self) -> Self:
        departments = {d.code for d in self.departments}
        staff = {s.id: s for s in self.staff}
        if self.triage_department not in departments:
            raise ValueError(f"triage_department {self.triage_department!r} is not a department")
        for member in self.staff:
            if member.department not in departments:
                raise ValueError(f"staff {member.id}: unknown department {member.department!r}")
        for department in self.departments:
            if department.head not in staff:
                raise ValueError(f"department {department.code}: head {department.head!r} unknown")
        for category in self.categories:
            if category.department not in departments:
                raise ValueError(
                    f"category {category.code}: unknown department {category.department!r}"
                )
        calendars = {c.id for c in self.calendars}
        for calendar in self.calendars:
            if calendar.holidays is not None and calendar.holidays not in self.holiday_calendars:
                raise ValueError(
                    f"calendar {calendar.id}: unknown holiday calendar {calendar.holidays!r}"
                )
        categories = {c.code for c in self.categories}
        for member in self.staff:
            if member.supervisor is not None and member.supervisor not in staff:
                raise ValueError(f"staff {member.id}: unknown supervisor {member.supervisor!r}")
            if member.calendar is not None and member.calendar not in calendars:
                raise ValueError(f"staff {member.id}: unknown calendar {member.calendar!r}")

        def known(target: str) -> bool:
            return target in staff or target in departments

        if self.escalation is not None:
            levels = [rung.level for rung in self.escalation.ladder]
            if levels != list(range(1, len(levels) + 1)):
                raise ValueError("escalation ladder: levels must be 1, 2, 3 … in order")
            for rung in self.escalation.ladder:
                for target in rung.to:
                    if not known(target):
                        raise ValueError(f"escalation level {rung.level}: unknown {target!r}")
        for notification in self.notifications:
            for target in notification.to:
                if target not in NOTIFICATION_ROLES and not known(target):
                    raise ValueError(
                        f"notification rule {notification.id}: unknown recipient {target!r}"
                    )
                if target not in NOTIFICATION_ROLES:
                    self._check_reachable(notification, target, staff)
            if "webhook" in notification.channels and "customer" in notification.to:
                raise ValueError(
                    f"notification rule {notification.id}: customers have no webhook channel"
                )
        for clock in self.clocks:
            if clock.calendar is not None and clock.calendar not in calendars:
                raise ValueError(f"clock rule {clock.id}: unknown calendar {clock.calendar!r}")
            for code in clock.categories:
                if code not in categories:
                    raise ValueError(f"clock rule {clock.id}: unknown category {code!r}")
        for rule in self.routing:
            where = f"routing rule {rule.id}"
            if rule.department not in departments:
                raise ValueError(f"{where}: unknown department {rule.department!r}")
            for code in rule.when.categories:
                if code not in categories:
                    raise ValueError(f"{where}: unknown category {code!r}")
            if rule.assignee is not None and rule.assignee not in staff:
                raise ValueError(f"{where}: unknown assignee {rule.assignee!r}")
            for target in rule.also_notify:
                if target not in staff and target not in departments:
                    raise ValueError(f"{where}: also_notify {target!r} is no staff or department")
            if rule.assignee is None and not self.candidates(
                rule.department, rule.roles, rule.skill, away_too=True
            ):
                raise ValueError(f"{where}: no staff in {rule.department} fits roles and skill")
        for field, codes in (
            ("categories", [c.code for c in self.categories]),
            ("branches", [b.id for b in self.branches]),
            ("clocks", [c.id for c in self.clocks]),
            ("calendars", [c.id for c in self.calendars]),
            ("routing", [r.id for r in self.routing]),
            ("notifications", [n.id for n in self.notifications]),
        ):
            if len(set(codes)) != len(codes):
                raise ValueError(f"{field}: duplicate ids")
        return self

    def _check_reachable(
        self, rule: NotificationRule, target: str, staff: dict[str, Staff]
    ) -> None:
        """A named recipient must have an address on every channel the rule uses."""
        member = staff.get(target) or staff[self.department(target).head]
        department = self.department(member.department if target in staff else target)
        missing = {
            "email": ("e-mail address", member.email is None),
            "sms": ("phone", member.phone is None),
            "webhook": ("department webhook", department.webhook is None),
        }
        for channel in rule.channels:
            address, absent = missing[channel]
            if absent:
                raise ValueError(f"notification rule {rule.id}: {target} has no {address}")

    def category(self, code: str) -> Category | None:
        return next((c for c in self.categories if c.code == code), None)

    def department(self, code: str) -> Department:
        return next(d for d in self.departments if d.code == code)

    def has_department(self, code: str) -> bool:
        return any(d.code == code for d in self.departments)

    def candidates(
        self,
        department: str,
        roles: tuple[str, ...] = (),
        skill: str | None = None,
        *,
        away_too: bool = False,
    ) -> list[Staff]:
        """Staff of ``department`` fitting ``roles`` and ``skill``; only those available
        unless ``away_too``."""
        return [
            s
            for s in self.staff
            if s.department == department
            and (s.available or away_too)
            and (not roles or s.role in roles)
            and (skill is None or skill in s.skills)
        ]

    def working_time(self, calendar_id: str | None = None) -> WorkingTime:
        """The named calendar's working time (the pack's first calendar by default)."""
        wanted = calendar_id or self.calendars[0].id
        calendar = next(c for c in self.calendars if c.id == wanted)
        holidays = self.holiday_calendars.get(calendar.holidays) if calendar.holidays else None
        return calendar.working_time(holidays)

    def working_time_of(self, member: Staff) -> WorkingTime:
        return self.working_time(member.calendar)

    def has_member(self, staff_id: str) -> bool:
        return any(s.id == staff_id for s in self.staff)

    def member(self, staff_id: str) -> Staff:
        return next(s for s in self.staff if s.id == staff_id)


class PackRegistry:
    """Every loaded pack, and which pack each branch runs."""

    def __init__(self, packs: list[PolicyPack]) -> None:
        self.packs = {p.pack: p for p in packs}
        self._by_branch: dict[str, tuple[PolicyPack, Branch]] = {}
        for pack in packs:
            for branch in pack.branches:
                if branch.id in self._by_branch:
                    other = self._by_branch[branch.id][0].pack
                    raise PolicyPackError(
                        f"branch {branch.id!r} is in both {other} and {pack.pack}"
                    )
                self._by_branch[branch.id] = (pack, branch)

    def require(self, pack: str) -> PolicyPack:
        """The named pack; an event naming a pack this service has not loaded is an error."""
        if pack not in self.packs:
            raise PolicyPackError(f"policy pack {pack!r} is not loaded")
        return self.packs[pack]

    def for_branch(self, branch_id: str) -> tuple[PolicyPack, Branch] | None:
        return self._by_branch.get(branch_id)

    def branch_ids(self) -> list[str]:
        return sorted(self._by_branch)


DEFAULT_HOLIDAYS = Path(__file__).resolve().parent.parent / "policy-packs" / "calendars"


def load_holiday_calendars(directory: Path) -> dict[str, HolidayCalendar]:
    calendars: dict[str, HolidayCalendar] = {}
    for path in sorted(directory.glob("*.yaml")):
        try:
            calendar = HolidayCalendar.model_validate(yaml.safe_load(path.read_bytes()))
        except (yaml.YAMLError, ValidationError) as exc:
            raise PolicyPackError(f"{path}: {exc}") from exc
        calendars[calendar.id] = calendar
    return calendars


def load_pack(path: Path, holidays: dict[str, HolidayCalendar] | None = None) -> PolicyPack:
    """One pack; holiday calendars come from the pack folder's ``calendars/`` if it has
    one, otherwise from the repo's."""
    if holidays is None:
        local = path.parent / "calendars"
        holidays = load_holiday_calendars(local if local.is_dir() else DEFAULT_HOLIDAYS)
    raw = path.read_bytes()
    try:
        document = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise PolicyPackError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(document, dict):
        raise PolicyPackError(f"{path}: top level must be a mapping")
    document["version"] = hashlib.sha256(raw).hexdigest()[:16]
    document["holiday_calendars"] = holidays
    try:
        return PolicyPack.model_validate(document)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(pack)'}: {err['msg']}"
            for err in exc.errors()
        )
        raise PolicyPackError(f"{path}: {problems}") from exc


def load_packs(directory: Path) -> PackRegistry:
    paths = sorted(directory.glob("*.yaml"))
    if not paths:
        raise PolicyPackError(f"{directory}: no policy packs (*.yaml) found")
    local = directory / "calendars"
    holidays = load_holiday_calendars(local if local.is_dir() else DEFAULT_HOLIDAYS)
    return PackRegistry([load_pack(path, holidays) for path in paths])


class LivePacks:
    """The packs in a folder, reloaded when its files change, without a restart.

    A change that does not validate is refused with a logged error and the packs in use
    stay as they were, so a bad edit never takes a service down. Each decision records
    the version of the pack that made it.
    """

    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self._signature = self._read_signature()
        self.current = load_packs(directory)
        self._listeners: list[Callable[[PackRegistry], Awaitable[None]]] = []

    def on_reload(self, listener: Callable[[PackRegistry], Awaitable[None]]) -> None:
        """Call ``listener`` with the new packs after each successful reload."""
        self._listeners.append(listener)

    def _read_signature(self) -> tuple[tuple[str, int, int], ...]:
        return tuple(
            (path.name, path.stat().st_mtime_ns, path.stat().st_size)
            for path in sorted(self._directory.glob("*.yaml"))
        )

    def reload_if_changed(self) -> bool:
        """True when a changed folder was loaded; raises PolicyPackError for a bad one."""
        signature = self._read_signature()
        if signature == self._signature:
            return False
        self._signature = signature
        self.current = load_packs(self._directory)
        return True

    async def watch(self, interval: float = 2.0) -> None:
        """Poll the folder until cancelled (works the same on a mounted ConfigMap)."""
        log = structlog.get_logger(__name__)
        while True:
            await asyncio.sleep(interval)
            try:
                if self.reload_if_changed():
                    versions = {name: p.version for name, p in self.current.packs.items()}
                    log.info("policy packs reloaded", versions=versions)
                    for listener in self._listeners:
                        await listener(self.current)
            except PolicyPackError as exc:
                log.error("policy pack change refused; keeping the packs in use", error=str(exc))
