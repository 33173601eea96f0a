"""Which provider serves an account, built from the account's settings and its decrypted
credentials. The one place that knows every provider."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable
from urllib.parse import urlencode
from uuid import UUID

import httpx
from redis.asyncio import Redis
from sqlmodel.ext.asyncio.session import AsyncSession

from telephony_gateway.commands import Command, Gather, Hangup, Say
from telephony_gateway.events import CallStarted, CarrierEvent, DigitsGathered
from telephony_gateway.models import CarrierAccount, ProviderName
from telephony_gateway.providers.base import SmsProvider, VoiceProvider, WebhookProvider
from telephony_gateway.providers.simulator import SimulatorProvider

VoiceFlow = Callable[[AsyncSession, UUID, CarrierEvent], Awaitable[list[Command]]]


async def greeting_flow(
    session: AsyncSession, tenant_id: UUID, event: CarrierEvent
) -> list[Command]:
    """Answers when no contact center is wired in: greets, takes a key, says it back."""
    if isinstance(event, CallStarted):
        return [
            Say("Thank you for calling. Press any key."),
            Gather(num_digits=1, timeout_seconds=5),
            Say("We did not hear anything. Goodbye."),
            Hangup(),
        ]
    if isinstance(event, DigitsGathered):
        return [Say(f"You pressed {event.digits}. Goodbye."), Hangup()]
    return []


class Providers:
    def __init__(
        self,
        secret: bytes,
        public_url: str,
        redis: Redis | None,
        voice_flow: VoiceFlow | None = None,
    ) -> None:
        self.secret = secret
        self.public_url = public_url.rstrip("/")
        self.redis = redis
        #: Who answers calls: the contact center (wired in depotline.app), else a greeting.
        self.voice_flow: VoiceFlow = voice_flow or greeting_flow
        self._http: httpx.AsyncClient | None = None

    @property
    def http(self) -> httpx.AsyncClient:
        """One connection pool for every carrier call of this process, made on first use."""
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=httpx.Timeout(15.0, connect=5.0))
        return self._http

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()

    def webhook_secret(self, account: CarrierAccount) -> bytes:
        """Per-account key for carriers that cannot sign (Kannel) and for the simulator."""
        return hmac.new(self.secret, f"webhook:{account.id}".encode(), hashlib.sha256).digest()

    def for_account(
        self, account: CarrierAccount
    ) -> SmsProvider | WebhookProvider | VoiceProvider | SimulatorProvider:
        from telephony_gateway.service import account_credentials

        credentials = account_credentials(account, self.secret)
        if account.provider == ProviderName.SIMULATOR:
            return SimulatorProvider(self.redis, self.webhook_secret(account))
        if account.provider == ProviderName.TWILIO:
            from telephony_gateway.providers.twilio import TwilioProvider

            query = urlencode({"tenant": str(account.tenant_id), "account": str(account.id)})
            return TwilioProvider(
                str(account.settings.get("account_sid", "")),
                credentials.get("auth_token", ""),
                api_base=str(account.settings.get("api_base", "https://api.twilio.com")),
                webhook_base_url=f"{self.public_url}/webhooks/twilio?{query}",
                http=self.http,
                public_url=self.public_url,
            )
        from telephony_gateway.providers.kannel import KannelSms

        return KannelSms(
            sendsms_url=str(account.settings.get("sendsms_url", "")),
            username=str(account.settings.get("username", "")),
            password=credentials.get("password", ""),
            smsc_id=account.settings.get("smsc_id") or None,
            webhook_secret=self.webhook_secret(account),
            client=self.http,
        )

    def status_url(self, account: CarrierAccount, message_id: str) -> str:
        """Where this account's carrier reports on a message we sent."""
        query = urlencode({"tenant": str(account.tenant_id), "account": str(account.id)})
        if account.provider == ProviderName.KANNEL:
            from telephony_gateway.providers.kannel import kannel_status_url

            return (
                kannel_status_url(
                    self.public_url,
                    str(account.tenant_id),
                    message_id,
                    self.webhook_secret(account),
                )
                + f"&account={account.id}"
            )
        return f"{self.public_url}/webhooks/{account.provider}/sms-status?{query}"
