"""Message templates: Jinja2 files whose first line is the subject."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined

TEMPLATE_DIR = Path(__file__).parent / "templates"

_environment = Environment(
    loader=FileSystemLoader(TEMPLATE_DIR),
    undefined=StrictUndefined,
    keep_trailing_newline=True,
    autoescape=False,  # plain-text e-mail: nothing is rendered as HTML  # noqa: S701
)


@dataclass(frozen=True)
class RenderedMessage:
    subject: str
    body: str


def render(template: str, language: str, **context: Any) -> RenderedMessage:
    text = _environment.get_template(f"{template}.{language}.txt.j2").render(**context)
    subject, _, body = text.partition("\n")
    return RenderedMessage(subject=subject.strip(), body=body.lstrip("\n"))
