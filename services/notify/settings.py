from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr

from shared.settings import ServiceSettings


class NotifySettings(ServiceSettings):
    # E-mail
    smtp_host: str = Field(default="127.0.0.1", description="SMTP server host.")
    smtp_port: int = Field(default=8025, description="SMTP server port (8025: the dev sink).")
    smtp_starttls: bool = Field(default=False, description="Upgrade the connection with STARTTLS.")
    smtp_username: str | None = Field(default=None, description="SMTP login, if required.")
    smtp_password: SecretStr | None = Field(default=None, description="SMTP password.")
    smtp_timeout: float = Field(default=10.0, gt=0, description="Seconds per SMTP step.")
    mail_from: str = Field(
        default="Customer Service <customer-service@complaints.local>",
        description="From: of every e-mail; only customer service speaks to customers.",
    )

    # SMS
    sms_provider: Literal["gateway", "aliyun", "twilio"] = Field(
        default="gateway", description="Which SMS adapter sends: gateway, aliyun or twilio."
    )
    sms_timeout: float = Field(default=10.0, gt=0, description="Seconds per provider request.")
    sms_gateway_url: str = Field(
        default="http://127.0.0.1:8026/gateway/send", description="Generic gateway: POST URL."
    )
    sms_gateway_auth_header: str | None = Field(
        default=None, description="Generic gateway: auth header name, e.g. Authorization."
    )
    sms_gateway_auth_value: SecretStr | None = Field(
        default=None, description="Generic gateway: auth header value, e.g. 'Bearer …'."
    )
    sms_gateway_body_template: str | None = Field(
        default=None,
        description="Generic gateway: Jinja2 JSON body with to, text, reference, template, "
        "language; default {to, text, reference}.",
    )
    sms_gateway_idempotency_header: str = Field(
        default="Idempotency-Key", description="Generic gateway: header carrying our reference."
    )
    sms_gateway_id_field: str = Field(
        default="id", description="Generic gateway: response field holding the message id."
    )
    aliyun_sms_endpoint: str = Field(
        default="https://dysmsapi.aliyuncs.com/", description="Aliyun SMS API endpoint."
    )
    aliyun_access_key_id: str = Field(default="dev-access-key", description="Aliyun AccessKey id.")
    aliyun_access_key_secret: SecretStr = Field(
        default=SecretStr("dev-access-secret"), description="Aliyun AccessKey secret."
    )
    aliyun_sign_name: str = Field(default="投诉服务", description="Aliyun SMS signature (签名).")
    aliyun_template_codes: dict[str, str] = Field(
        default={},
        description="JSON: platform template name → Aliyun TemplateCode (each registered and "
        "approved at Aliyun). Unmapped templates fail permanently.",
    )
    twilio_api_base: str = Field(default="https://api.twilio.com", description="Twilio API base.")
    twilio_account_sid: str = Field(
        default="ACdev0000000000000000000000000000", description="Twilio Account SID."
    )
    twilio_auth_token: SecretStr = Field(
        default=SecretStr("dev-twilio-token"), description="Twilio auth token."
    )
    twilio_from: str | None = Field(default=None, description="Twilio sender number (From).")
    twilio_messaging_service_sid: str | None = Field(
        default=None, description="Twilio Messaging Service SID; used instead of From when set."
    )

    # Webhooks
    webhook_urls: dict[str, str] = Field(
        default={}, description="JSON: webhook name (a department's `webhook`) → URL."
    )
    webhook_base_url: str = Field(
        default="http://127.0.0.1:8026/webhooks",
        description="Webhooks not in WEBHOOK_URLS are posted to <this>/<name>.",
    )
    webhook_signing_secret: SecretStr = Field(
        default=SecretStr("dev-webhook-secret"),
        description="HMAC-SHA256 key for the X-Complaints-Signature header.",
    )
    webhook_timeout: float = Field(
        default=10.0, gt=0, description="Seconds a webhook receiver has to answer each call."
    )

    # Links in messages
    survey_base_url: str = Field(
        default="http://127.0.0.1:8001",
        description="Public URL of intake: the survey link is <this>/survey/<no>?token=….",
    )
    case_base_url: str = Field(
        default="http://127.0.0.1:8005",
        description="URL of reporting: staff messages link <this>/v1/cases/<no>.",
    )

    # Delivery
    send_concurrency: int = Field(
        default=32, ge=1, description="Sends in flight per instance (notify waits on I/O)."
    )
    send_attempts: int = Field(
        default=5, ge=1, description="Tries before a message is dead-lettered."
    )
    retry_base_seconds: float = Field(
        default=2.0, gt=0, description="Backoff: the first retry waits up to this long."
    )
    retry_cap_seconds: float = Field(default=300.0, gt=0, description="Backoff: the longest wait.")
    lease_seconds: float = Field(
        default=60.0,
        gt=0,
        description="A send not finished within this is reconciled; must exceed the "
        "provider timeouts.",
    )
    reconcile_after_seconds: float = Field(
        default=15.0,
        ge=0,
        description="After an unknown outcome, wait this long before asking the provider.",
    )
    poll_seconds: float = Field(
        default=0.5, gt=0, description="Fallback poll for due messages (NOTIFY wakes sooner)."
    )
    status_check_seconds: float = Field(
        default=60.0, gt=0, description="How often a sent SMS's delivery status is asked."
    )
    status_checks: int = Field(
        default=10, ge=0, description="How many times before delivery status is given up."
    )
    # Per instance: with N instances the provider sees up to N times these.
    rate_limit_email: float = Field(
        default=100.0, gt=0, description="E-mails per second, per instance."
    )
    rate_limit_sms: float = Field(default=50.0, gt=0, description="SMS per second, per instance.")
    rate_limit_webhook: float = Field(
        default=20.0, gt=0, description="Webhook posts per second, per instance."
    )
