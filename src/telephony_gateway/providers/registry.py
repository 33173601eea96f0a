"""Which provider serves an account, built from the account's settings and its decrypted
credentials. The one place that knows every provider."""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import urlencode

import httpx
from redis.asyncio import Redis

from telephony_gateway.models import CarrierAccount, ProviderName
from telephony_gateway.providers.base import SmsProvider, VoiceProvider, WebhookProvider
from telephony_gateway.providers.simulator import SimulatorProvider


class Providers:
    def __init__(self, secret: bytes, public_url: str, redis: Redis | None) -> None:
        self.secret = secret
        self.public_url = public_url.rstrip("/")
        self.redis = redis
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
