"""Notify: the customer-service voice, and the staff's alarm.

Consumes intake's, routing's and sla's events; the pack's rules say who hears what
(planning.py), each message is rendered and queued in the transaction that consumes
the event, and the delivery worker (delivery.py) sends it exactly once in effect.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import structlog

from services.notify.channels.aliyun import AliyunSmsProvider
from services.notify.channels.base import SmsProvider
from services.notify.channels.email import SmtpSender
from services.notify.channels.gateway import DEFAULT_BODY_TEMPLATE, GatewaySmsProvider
from services.notify.channels.twilio import TwilioSmsProvider
from services.notify.channels.webhook import WebhookSender
from services.notify.delivery import Channels, DeliveryWorker, OutcomeCounters
from services.notify.planning import RELEVANT, Planner
from services.notify.settings import NotifySettings
from services.notify.templates import LANGUAGES, Templates
from shared.consumer import subscribe_events
from shared.consumer_app import ConsumerApp, PoolHolder, consumer_app, new_broker
from shared.contracts import Event
from shared.inbox import first_delivery
from shared.logging import configure_logging
from shared.metrics import ServiceMetrics
from shared.policy import LivePacks, PackRegistry
from shared.topics import Topics
from shared.tracing import configure_tracing

SCHEMA = "notify"
MIGRATIONS = Path(__file__).parent / "migrations"
PUBLISHES = ("notify",)
SUBSCRIBES_TO = ("intake", "routing", "sla")
OPS_PORT = 8004

log = structlog.get_logger("notify")


def sms_provider(settings: NotifySettings) -> SmsProvider:
    if settings.sms_provider == "aliyun":
        return AliyunSmsProvider(
            endpoint=settings.aliyun_sms_endpoint,
            access_key_id=settings.aliyun_access_key_id,
            access_key_secret=settings.aliyun_access_key_secret.get_secret_value(),
            sign_name=settings.aliyun_sign_name,
            template_codes=settings.aliyun_template_codes,
            timeout=settings.sms_timeout,
        )
    if settings.sms_provider == "twilio":
        return TwilioSmsProvider(
            account_sid=settings.twilio_account_sid,
            auth_token=settings.twilio_auth_token.get_secret_value(),
            from_number=settings.twilio_from,
            messaging_service_sid=settings.twilio_messaging_service_sid,
            api_base=settings.twilio_api_base,
            timeout=settings.sms_timeout,
        )
    auth = settings.sms_gateway_auth_value
    return GatewaySmsProvider(
        settings.sms_gateway_url,
        auth_header=settings.sms_gateway_auth_header,
        auth_value=auth.get_secret_value() if auth else None,
        body_template=settings.sms_gateway_body_template or DEFAULT_BODY_TEMPLATE,
        idempotency_header=settings.sms_gateway_idempotency_header,
        id_key=settings.sms_gateway_id_field,
        timeout=settings.sms_timeout,
    )


def check_templates(registry: PackRegistry, templates: Templates) -> None:
    """Every rule's template, in every language, with the blocks its channels need: a
    missing one is found at start-up and on reload, not when a customer is waiting."""
    for pack in registry.packs.values():
        for rule in pack.notifications:
            for language in LANGUAGES:
                templates.check(pack.pack, rule.template, language, sms="sms" in rule.channels)


def build_app(settings: NotifySettings) -> ConsumerApp:
    configure_logging("notify", settings.log_level)
    configure_tracing("notify")
    packs = LivePacks(settings.policy_packs_dir)
    templates = Templates(settings.policy_packs_dir / "templates")
    check_templates(packs.current, templates)
    topics = Topics.in_namespace(settings.complaints_topic_namespace)
    planner = Planner(packs, templates, settings, topics.notify.name)
    holder = PoolHolder()
    metrics = ServiceMetrics("notify")
    counters = OutcomeCounters.counted_in(metrics)
    broker = new_broker(settings, "notify", metrics)

    async def on_event(event: Event) -> None:
        if event.event_type not in RELEVANT:
            return
        async with holder.transaction() as conn:
            if not await first_delivery(conn, event):
                return
            queued = await planner.consume(conn, event)
        if queued:
            log.info("notifications queued", count=queued, event_type=event.event_type)

    async def templates_still_complete(registry: PackRegistry) -> None:
        try:
            check_templates(registry, templates)
        except LookupError as exc:
            log.error("a reloaded pack names a template that does not exist", error=str(exc))

    @asynccontextmanager
    async def delivering() -> AsyncIterator[None]:
        email = SmtpSender(
            host=settings.smtp_host,
            port=settings.smtp_port,
            start_tls=settings.smtp_starttls,
            username=settings.smtp_username,
            password=(
                settings.smtp_password.get_secret_value() if settings.smtp_password else None
            ),
            timeout=settings.smtp_timeout,
        )
        sms = sms_provider(settings)
        webhook = WebhookSender(
            secret=settings.webhook_signing_secret.get_secret_value(),
            timeout=settings.webhook_timeout,
        )

        def webhook_url(name: str) -> str:
            return settings.webhook_urls.get(name) or f"{settings.webhook_base_url}/{name}"

        channels = Channels(email=email, sms=sms, webhook=webhook, webhook_url=webhook_url)
        worker = DeliveryWorker(holder.pool, settings, channels, topics.notify.name, counters)
        async with AsyncExitStack() as stack:
            stack.push_async_callback(sms.aclose)
            stack.push_async_callback(webhook.aclose)
            stack.callback(email.close)
            await stack.enter_async_context(worker.running())
            yield

    packs.on_reload(templates_still_complete)
    subscribe_events(
        broker,
        [topics.intake, topics.routing, topics.sla],
        group_id="notify",
        handle=on_event,
        pool=lambda: holder.pool,
    )
    return consumer_app(
        broker,
        settings,
        SCHEMA,
        MIGRATIONS,
        holder,
        metrics,
        ops_port=OPS_PORT,
        with_relay=True,
        packs=packs,
        background=delivering,
    )
