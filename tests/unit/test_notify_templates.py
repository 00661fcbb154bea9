"""Every notification rule of every policy pack renders, in both languages.

The templates live in ``policy-packs/templates`` (see ``services/notify/templates.py``):
for each rule under ``notifications:`` the named template must exist for the pack in zh
and en, with an ``sms`` block when the rule sends SMS, and render with the variables the
notify service passes (StrictUndefined: a template using anything else fails here).
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from services.notify.templates import LANGUAGES, SHARED, RenderedMessage, Templates
from shared.policy import NotificationRule, PolicyPack, load_packs
from shared.settings import REPO_ROOT

PACKS_DIR = REPO_ROOT / "policy-packs"
TEMPLATES_DIR = PACKS_DIR / "templates"
REGISTRY = load_packs(PACKS_DIR)
PACKS = sorted(REGISTRY.packs)

COMPLAINT_NO = "261122001"
CASE_URL = f"https://complaints.example.com/cases/{COMPLAINT_NO}"
SURVEY_URL = "https://complaints.example.com/s/Xk3pQ9vT2mLw"
FEEDBACK_TOKEN = "Xk3pQ9vT2mLw"

# Rules to the customer on these events carry the satisfaction survey (002 八).
DECISION_EVENTS = frozenset(
    {"DecisionCommunicated", "ComplaintAnsweredOnSpot", "ComplaintNotUpheld"}
)
# Every pack gets a rule for this event (escalation rungs), template escalation-raised.
ESCALATION_RAISED = "escalation-raised"

# Every per-event variable; the renderer passes them all, None where they do not apply.
PER_EVENT = (
    "previous_assignee_name",
    "reason",
    "decision",
    "survey_url",
    "clock",
    "due_local",
    "percent",
    "escalated_to_name",
    "level",
    "satisfied",
    "quality",
    "attitude",
    "speed",
    "comment",
)

SAMPLE: dict[str, dict[str, str]] = {
    "zh": {
        "customer_name": "王女士",
        "recipient_name": "李明",
        "assignee_name": "张伟",
        "previous_assignee_name": "刘洋",
        "escalated_to_name": "赵刚",
        "description": "十一月二十二日上午到店办理业务，工作人员态度冷淡，等候近一小时无人处理，"
        "要求给予说明并改进。",
        "decision": "经核实，您反映的情况属实。我们已对相关人员进行批评教育，并调整了高峰时段的"
        "人员安排；由此产生的费用已全额退还给您。对给您带来的不便，我们深表歉意。",
        "not_upheld_reason": "经调阅当日监控和服务记录，您到店时正值系统升级，工作人员已按规定"
        "告知预计等候时间并提供了其他办理方式；该费用属合同约定的正常收费，无法退还。",
        "assigned_reason": "按类别分派至责任部门，当前未结案件最少",
        "escalated_reason": "处理超时，升级至部门经理",
        "reopened_reason": "客户对处理结果不满意，要求重新调查",
        "comment": "处理速度太慢，希望改进。",
    },
    "en": {
        "customer_name": "Ms Wang",
        "recipient_name": "Li Ming",
        "assignee_name": "Zhang Wei",
        "previous_assignee_name": "Liu Yang",
        "escalated_to_name": "Zhao Gang",
        "description": "On 22 November the staff were unfriendly and nobody dealt with me for "
        "nearly an hour. I would like an explanation and an improvement.",
        "decision": "We have confirmed what you reported. The staff concerned have been spoken "
        "to, rosters at peak times have been changed, and the charge has been refunded in "
        "full. We apologise for the inconvenience.",
        "not_upheld_reason": "The records of that day show that our systems were being "
        "upgraded; the staff told you the expected wait and offered other ways to proceed. "
        "The charge is the normal fee under your contract and cannot be refunded.",
        "assigned_reason": "Routed by category; fewest open cases",
        "escalated_reason": "Overdue; escalated to the department manager",
        "reopened_reason": "The customer is not satisfied with the outcome",
        "comment": "Far too slow, please improve.",
    },
}

_CJK = re.compile(r"[\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef]")
_UNRENDERED = ("{{", "}}", "{%", "%}", "{#", "#}")
_URL = re.compile(r"https?://")
# GSM 03.38: the basic character set and its extension table (the latter costs two).
_GSM7 = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
    "^{}\\[~]|€"
)


@pytest.fixture(scope="module")
def templates() -> Templates:
    return Templates(TEMPLATES_DIR)


def _label(label: Any, language: str) -> str:
    return str(getattr(label, language))


def _recipient(rule: NotificationRule | None, event: str, sample: dict[str, str]) -> str:
    """The person the message is addressed to: the rule's first recipient."""
    first = rule.to[0] if rule is not None else None
    if first == "customer":
        return sample["customer_name"]
    if first == "assignee":
        return sample["assignee_name"]
    if first == "previous_assignee" and event == "ComplaintAssigned":
        return sample["previous_assignee_name"]
    return sample["recipient_name"]


def context(
    pack: PolicyPack, event: str, language: str, rule: NotificationRule | None = None
) -> dict[str, Any]:
    """What the notify service passes: every variable, per-event ones filled for `event`."""
    sample = SAMPLE[language]
    category = pack.categories[0]
    if rule is not None and rule.when.categories:
        category = next(c for c in pack.categories if c.code == rule.when.categories[0])
    severity = "urgent"
    if rule is not None and rule.when.severities:
        severity = str(rule.when.severities[0])
    clock = pack.clocks[0].clock if pack.clocks else "resolution"
    values: dict[str, Any] = {
        "language": language,
        "organisation": _label(pack.name, language),
        "branch": _label(pack.branches[0].name, language),
        "complaint_no": COMPLAINT_NO,
        "customer_name": sample["customer_name"],
        "recipient_name": _recipient(rule, event, sample),
        "category": _label(category.label, language),
        "severity": severity,
        "received_local": "2026-11-22 10:30",
        "promised_reply_local": "2026-11-23 12:00",
        "description": sample["description"][:200],
        "assignee_name": sample["assignee_name"],
        "department": _label(pack.department(category.department).name, language),
        "case_url": CASE_URL,
    }
    values.update(dict.fromkeys(PER_EVENT))
    payload: dict[str, Any] = {}
    if event == "ComplaintAssigned":
        values["previous_assignee_name"] = sample["previous_assignee_name"]
        values["reason"] = sample["assigned_reason"]
        payload = {"department": category.department, "reason": values["reason"]}
    elif event in DECISION_EVENTS:
        not_upheld = event == "ComplaintNotUpheld"
        values["decision"] = sample["not_upheld_reason" if not_upheld else "decision"]
        values["survey_url"] = SURVEY_URL
        field = {
            "DecisionCommunicated": "decision",
            "ComplaintAnsweredOnSpot": "answer",
            "ComplaintNotUpheld": "reason",
        }[event]
        payload = {field: values["decision"], "feedback_token": FEEDBACK_TOKEN}
    elif event in ("ClockWarning", "ClockBreached", "ReturnVisitDue"):
        values["clock"] = "return-visit" if event == "ReturnVisitDue" else clock
        values["due_local"] = "2026-11-23 12:00"
        payload = {"name": values["clock"], "due_at": "2026-11-23T04:00:00Z"}
        if event == "ClockWarning":
            values["percent"] = 80
            payload["fraction"] = 0.8
    elif event == "ComplaintEscalated":
        values["reason"] = sample["escalated_reason"]
        values["escalated_to_name"] = sample["escalated_to_name"]
        payload = {"reason": values["reason"], "escalated_to": "manager"}
    elif event == "EscalationRaised":
        values.update(level=2, reason="breach", clock=clock)
        payload = {"level": 2, "to": ["manager"], "reason": "breach"}
    elif event == "ComplaintReopened":
        values["reason"] = sample["reopened_reason"]
        payload = {"reason": values["reason"]}
    elif event == "FeedbackReceived":
        values.update(satisfied=False, quality=2, attitude=3, speed=1, comment=sample["comment"])
        payload = {"satisfied": False, "quality": 2, "attitude": 3, "speed": 1}
        payload["comment"] = sample["comment"]
    values["event"] = {
        "event_type": event,
        "complaint_no": COMPLAINT_NO,
        "branch_id": pack.branches[0].id,
        **payload,
    }
    return values


def _rules() -> list[Any]:
    return [
        pytest.param(pack, rule, language, id=f"{pack}/{rule.id}/{language}")
        for pack in PACKS
        for rule in REGISTRY.packs[pack].notifications
        for language in LANGUAGES
    ]


def _parts(message: RenderedMessage) -> list[str]:
    return [message.subject, message.text, message.html, message.sms or ""]


def _assert_well_formed(
    message: RenderedMessage, values: dict[str, Any], language: str, *, sms: bool
) -> None:
    assert message.subject.strip()
    assert message.text.strip()
    assert COMPLAINT_NO in message.subject or COMPLAINT_NO in message.text
    for part in _parts(message):
        for marker in _UNRENDERED:
            assert marker not in part, f"unrendered {marker!r} in {part!r}"
    if sms:
        assert message.sms, "the rule sends SMS: the template needs a non-empty sms block"
        # No link in an SMS but the survey's.
        assert not _URL.search(message.sms.replace(SURVEY_URL, "")), message.sms
        if language == "zh":
            assert message.sms.startswith(f"【{values['organisation']}】"), message.sms
        else:
            outside = sorted(set(message.sms) - _GSM7)
            assert not outside, f"not GSM-7 in an English SMS: {outside}: {message.sms!r}"
    if language == "en":
        for part in (message.subject, message.text, message.sms or ""):
            assert not _CJK.search(part), f"CJK in English output: {part!r}"


@pytest.mark.parametrize(("pack_name", "rule", "language"), _rules())
def test_every_notification_rule_renders(
    templates: Templates, pack_name: str, rule: NotificationRule, language: str
) -> None:
    pack = REGISTRY.packs[pack_name]
    sms = "sms" in rule.channels
    templates.check(pack_name, rule.template, language, sms=sms)
    values = context(pack, rule.event, language, rule)
    message = templates.render(pack_name, rule.template, language, values)
    _assert_well_formed(message, values, language, sms=sms)
    if "customer" not in rule.to:
        # The same template also reaches the rule's other recipients (e.g. also_notify).
        others = dict(values, recipient_name=SAMPLE[language]["recipient_name"])
        other = templates.render(pack_name, rule.template, language, others)
        _assert_well_formed(other, others, language, sms=sms)
        assert CASE_URL in other.text
    if "customer" in rule.to:
        # Customers hear customer service's voice only: no case file, no staff names.
        for part in _parts(message):
            assert CASE_URL not in part
            for name in ("assignee_name", "previous_assignee_name", "escalated_to_name"):
                staff_name = SAMPLE[language][name]
                assert staff_name not in part, f"{name} shown to the customer"
        if rule.event in DECISION_EVENTS:
            assert SURVEY_URL in message.text
            assert SURVEY_URL in message.html
            if sms:
                assert message.sms is not None
                assert SURVEY_URL in message.sms
    else:
        assert CASE_URL in message.text, "staff messages link the case file"


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("pack_name", PACKS)
def test_escalation_raised_renders_for_every_pack(
    templates: Templates, pack_name: str, language: str
) -> None:
    """Every pack's ladder tells its rungs by e-mail and SMS, whether or not the pack file
    has its EscalationRaised rule yet."""
    pack = REGISTRY.packs[pack_name]
    templates.check(pack_name, ESCALATION_RAISED, language, sms=True)
    for reason, clock in (("breach", "resolution"), ("major", None), ("compensation", None)):
        values = context(pack, "EscalationRaised", language)
        values.update(reason=reason, clock=clock)
        message = templates.render(pack_name, ESCALATION_RAISED, language, values)
        _assert_well_formed(message, values, language, sms=True)
        assert CASE_URL in message.text


@pytest.mark.parametrize("pack_name", PACKS)
def test_chinese_acknowledgement_sms_fits_one_segment(templates: Templates, pack_name: str) -> None:
    """A Chinese SMS is UCS-2: 70 characters make one segment."""
    values = context(REGISTRY.packs[pack_name], "ComplaintReceived", "zh")
    assert len(values["complaint_no"]) == 9
    assert values["promised_reply_local"] == "2026-11-23 12:00"
    message = templates.render(pack_name, "acknowledgement", "zh", values)
    assert message.sms is not None
    assert len(message.sms) <= 70, f"{len(message.sms)} characters: {message.sms}"
    assert COMPLAINT_NO in message.sms
    assert "2026-11-23 12:00" in message.sms


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("pack_name", PACKS)
def test_optional_values_may_be_absent(templates: Templates, pack_name: str, language: str) -> None:
    """No promised reply time, no assignee or department yet: still a whole message."""
    pack = REGISTRY.packs[pack_name]
    for rule in pack.notifications:
        values = context(pack, rule.event, language, rule)
        values.update(promised_reply_local=None, assignee_name=None, department=None)
        if rule.event == "ComplaintAssigned":
            values.update(previous_assignee_name=None)
        if rule.event == "ComplaintEscalated":
            values.update(escalated_to_name=None)
        if rule.event == "FeedbackReceived":
            values.update(comment=None, satisfied=True, quality=5, attitude=5, speed=5)
        message = templates.render(pack_name, rule.template, language, values)
        _assert_well_formed(message, values, language, sms="sms" in rule.channels)
        assert "None" not in message.subject + message.text + (message.sms or "")


# The pack's word for the people who complain, in the customer's messages.
VOCABULARY = {
    "hotel": ("宾客", "guest"),
    "property": ("业主", "resident"),
    "fitness-club": ("会员", "member"),
    "testing-lab": ("委托方", "client"),
    "manufacturing": ("客户", "customer"),
    "furniture": ("客户", "customer"),
    "it-services": ("用户", "user"),
}


@pytest.mark.parametrize("pack_name", PACKS)
def test_customer_messages_use_the_packs_own_word(templates: Templates, pack_name: str) -> None:
    pack = REGISTRY.packs[pack_name]
    pack_dir = TEMPLATES_DIR / pack_name
    assert (pack_dir / "acknowledgement.zh.j2").is_file()
    customer_rules = [
        r for r in pack.notifications if "customer" in r.to and r.event in DECISION_EVENTS
    ]
    assert customer_rules
    for rule in customer_rules:
        assert (pack_dir / f"{rule.template}.zh.j2").is_file(), f"no {pack_name} {rule.template}"
    zh_word, en_word = VOCABULARY[pack_name]
    for rule in [r for r in pack.notifications if "customer" in r.to]:
        for language, word in (("zh", zh_word), ("en", en_word)):
            values = context(pack, rule.event, language, rule)
            message = templates.render(pack_name, rule.template, language, values)
            assert word in message.text.lower(), f"{rule.template}.{language}: no {word!r}"


def test_every_template_file_is_used_and_has_both_languages() -> None:
    """No template a rule cannot reach (a misspelt name), none in one language only."""
    used = {
        pack: {rule.template for rule in REGISTRY.packs[pack].notifications} | {ESCALATION_RAISED}
        for pack in PACKS
    }
    everywhere = set().union(*used.values())
    for folder in sorted(p for p in TEMPLATES_DIR.iterdir() if p.is_dir()):
        assert folder.name == SHARED or folder.name in REGISTRY.packs, f"unknown pack {folder}"
        reachable = everywhere if folder.name == SHARED else used[folder.name]
        for path in sorted(folder.glob("*.j2")):
            if path.name.startswith("_"):  # partials and macros, included by the messages
                continue
            name, language, _ = path.name.rsplit(".", 2)
            assert language in LANGUAGES, path
            assert name in reachable, f"{path}: no rule of the pack sends {name!r}"
            for other in LANGUAGES:
                assert (folder / f"{name}.{other}.j2").is_file(), f"{path}: no {other} version"
    for name in everywhere:
        for language in LANGUAGES:
            assert (TEMPLATES_DIR / SHARED / f"{name}.{language}.j2").is_file(), (
                f"no shared default {name}.{language}.j2"
            )


@pytest.mark.parametrize("language", LANGUAGES)
def test_suggestions_are_thanked_or_declined_with_tact(templates: Templates, language: str) -> None:
    """property: an adopted suggestion is thanked (001 5.4.5); furniture: one that is not
    adopted is declined tactfully (004 篇二 4.2.3.2 2))."""
    cases = (
        ("property", "customer-decision", {"zh": "采纳", "en": "adopted it"}),
        ("furniture", "customer-not-upheld", {"zh": "暂时未能采纳", "en": "not able to adopt"}),
    )
    for pack_name, rule_id, expected in cases:
        pack = REGISTRY.packs[pack_name]
        rule = next(r for r in pack.notifications if r.id == rule_id)
        values = context(pack, rule.event, language, rule)
        suggestion = pack.category("suggestion")
        assert suggestion is not None
        values["category"] = _label(suggestion.label, language)
        message = templates.render(pack_name, rule.template, language, values)
        _assert_well_formed(message, values, language, sms=True)
        assert expected[language] in message.text
        assert SURVEY_URL in message.text
