"""Policy packs: each organisation's rules as validated data, loaded from YAML.

A pack's version is a hash of its file's bytes, recorded on every decision made
with it. Loading fails with the file, the field and what is wrong.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from shared.contracts.intake import CustomerType, Region, Severity

_SLUG = r"^[a-z][a-z0-9-]*$"


class PolicyPackError(ValueError):
    """A policy-pack file that cannot be used, with where and why."""


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Label(_Model):
    zh: str = Field(min_length=1)
    en: str = Field(min_length=1)


class Branch(_Model):
    id: str = Field(pattern=_SLUG)
    name: Label
    timezone: str = "Asia/Shanghai"

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value


class Staff(_Model):
    id: str = Field(pattern=_SLUG)
    name: str = Field(min_length=1)
    department: str
    role: str = Field(min_length=1)


class Department(_Model):
    code: str = Field(pattern=_SLUG)
    name: Label
    head: str


class Category(_Model):
    code: str = Field(pattern=_SLUG)
    label: Label
    department: str
    seed: str = Field(min_length=1, description="Where in the source document the rule comes from.")


class ClockRule(_Model):
    """A deadline that starts when a complaint is received, if its filters match."""

    id: str = Field(pattern=_SLUG)
    clock: str = Field(pattern=_SLUG)
    target_hours: float = Field(gt=0)
    customer_types: tuple[CustomerType, ...] = ()
    severities: tuple[Severity, ...] = ()
    regions: tuple[Region, ...] = ()
    seed: str = Field(min_length=1)

    def matches(self, customer_type: CustomerType, severity: Severity, region: Region) -> bool:
        return (
            (not self.customer_types or customer_type in self.customer_types)
            and (not self.severities or severity in self.severities)
            and (not self.regions or region in self.regions)
        )


class PolicyPack(_Model):
    pack: str = Field(pattern=_SLUG)
    name: Label
    seed: str
    triage_department: str
    branches: tuple[Branch, ...] = Field(min_length=1)
    departments: tuple[Department, ...] = Field(min_length=1)
    staff: tuple[Staff, ...] = Field(min_length=1)
    categories: tuple[Category, ...] = Field(min_length=1)
    clocks: tuple[ClockRule, ...] = ()
    version: str = Field(default="", description="Set by the loader: hash of the file.")

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
        for field, codes in (
            ("categories", [c.code for c in self.categories]),
            ("branches", [b.id for b in self.branches]),
            ("clocks", [c.id for c in self.clocks]),
        ):
            if len(set(codes)) != len(codes):
                raise ValueError(f"{field}: duplicate ids")
        return self

    def category(self, code: str) -> Category | None:
        return next((c for c in self.categories if c.code == code), None)

    def department(self, code: str) -> Department:
        return next(d for d in self.departments if d.code == code)

    def has_department(self, code: str) -> bool:
        return any(d.code == code for d in self.departments)

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


def load_pack(path: Path) -> PolicyPack:
    raw = path.read_bytes()
    try:
        document = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise PolicyPackError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(document, dict):
        raise PolicyPackError(f"{path}: top level must be a mapping")
    document["version"] = hashlib.sha256(raw).hexdigest()[:16]
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
    return PackRegistry([load_pack(path) for path in paths])
