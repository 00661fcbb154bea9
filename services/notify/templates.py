"""Message templates: Jinja2 files per pack and language, one file per message.

A template lives at ``policy-packs/templates/<pack>/<name>.<language>.j2``, or,
shared by every pack, at ``policy-packs/templates/_shared/<name>.<language>.j2``;
the pack's own file wins. A file defines blocks: ``subject`` and ``text`` (the
e-mail, and the webhook's text), and ``sms`` where a rule sends it by SMS. The
HTML part of an e-mail is made from ``text`` (escaped) unless the file defines an
``html`` block, which is rendered with autoescaping on.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, Template, TemplateNotFound

SHARED = "_shared"
LANGUAGES = ("zh", "en")
_URL = re.compile(r"https?://[^\s<>\"']+")


class TemplateMissingError(LookupError):
    """No file, or no block, for a message a rule asks for."""


@dataclass(frozen=True)
class RenderedMessage:
    subject: str
    text: str
    html: str
    sms: str | None


class Templates:
    def __init__(self, root: Path) -> None:
        self._root = root

    @cache  # noqa: B019 -- one Templates per process; environments are meant to live long
    def _environments(self, pack: str) -> tuple[Environment, Environment]:
        loader = FileSystemLoader([self._root / pack, self._root / SHARED])

        def environment(autoescape: bool) -> Environment:
            return Environment(
                loader=loader,
                undefined=StrictUndefined,
                autoescape=autoescape,  # noqa: S701 -- on for HTML, off for text and SMS
                keep_trailing_newline=False,
                trim_blocks=True,
                lstrip_blocks=True,
            )

        # Subjects, plain text and SMS are not HTML: escaping would corrupt them.
        return environment(False), environment(True)

    def _template(self, environment: Environment, pack: str, name: str, language: str) -> Template:
        try:
            return environment.get_template(f"{name}.{language}.j2")
        except TemplateNotFound:
            raise TemplateMissingError(
                f"no template {name}.{language}.j2 for pack {pack} "
                f"(looked in {self._root / pack} and {self._root / SHARED})"
            ) from None

    def check(self, pack: str, name: str, language: str, *, sms: bool) -> None:
        """Raise TemplateMissingError unless the template exists with the blocks needed."""
        template = self._template(self._environments(pack)[0], pack, name, language)
        needed = ("subject", "text", "sms") if sms else ("subject", "text")
        for block in needed:
            if block not in template.blocks:
                raise TemplateMissingError(
                    f"template {pack}/{name}.{language}.j2: no {block} block"
                )

    def render(
        self, pack: str, name: str, language: str, context: Mapping[str, Any]
    ) -> RenderedMessage:
        plain, escaped = self._environments(pack)
        template = self._template(plain, pack, name, language)
        blocks = template.blocks
        for block in ("subject", "text"):
            if block not in blocks:
                raise TemplateMissingError(
                    f"template {pack}/{name}.{language}.j2: no {block} block"
                )
        variables = template.new_context(dict(context))

        def part(block_name: str) -> str:
            return "".join(blocks[block_name](variables)).strip()

        text = part("text")
        if "html" in blocks:
            html_template = self._template(escaped, pack, name, language)
            body_html = "".join(
                html_template.blocks["html"](html_template.new_context(dict(context)))
            ).strip()
        else:
            body_html = text_to_html(text)
        return RenderedMessage(
            subject=" ".join(part("subject").split()),
            text=text,
            html=_document(body_html, language),
            sms=" ".join(part("sms").split()) if "sms" in blocks else None,
        )


def _no_block(pack: str, name: str, language: str, block: str) -> TemplateMissingError:
    return TemplateMissingError(f"template {pack}/{name}.{language}.j2: no {block} block")


def text_to_html(text: str) -> str:
    """Paragraphs and line breaks kept, everything escaped, links made clickable."""
    paragraphs = [p for p in re.split(r"\n\s*\n", text) if p.strip()]

    def paragraph(chunk: str) -> str:
        escaped = html.escape(chunk.strip())
        linked = _URL.sub(lambda m: f'<a href="{m.group(0)}">{m.group(0)}</a>', escaped)
        return "<p>" + linked.replace("\n", "<br>\n") + "</p>"

    return "\n".join(paragraph(p) for p in paragraphs)


def _document(body: str, language: str) -> str:
    lang = "zh-CN" if language == "zh" else "en"
    return (
        f'<!DOCTYPE html>\n<html lang="{lang}"><head><meta charset="utf-8"></head>\n'
        '<body style="font-family: sans-serif; line-height: 1.5">\n'
        f"{body}\n</body></html>\n"
    )
