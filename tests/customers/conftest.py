"""SwiftFreight with a simulated hotline and the demo customers, and helpers to run the
customers service under a tenant's scope."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from uuid import UUID

import pytest

from contact_center import voice
from customers import demo
from customers.models import Customer
from customers.repository import CustomerRepository
from customers.schemas import Profile
from customers.service import profile
from depotline.config import Settings
from depotline.db import Database, tenant_scope
from telephony_gateway.providers.registry import Providers
from telephony_gateway.simulate import SimulatedCarrier
from tests.telephony_gateway.conftest import NUMBER, Line
from tests.telephony_gateway.conftest import drain as drain
from tests.telephony_gateway.conftest import jobs as jobs
from tests.telephony_gateway.conftest import line as line
from tests.tenant.conftest import Demo
from tests.tenant.conftest import make_client as make_client
from tests.tenant.conftest import world as world

T = TypeVar("T")


@dataclass
class Desk:
    """One tenant's customer data, reached the way the app reaches it: under its scope."""

    db: Database
    tenant_id: UUID

    async def run(self, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        """A service function in its own transaction."""
        with tenant_scope(self.tenant_id):
            async with self.db.session() as session:
                return await fn(session, *args, **kwargs)

    async def owner_of(self, number: str) -> Customer | None:
        with tenant_scope(self.tenant_id):
            async with self.db.session() as session:
                return await CustomerRepository(session).customer_by_phone(self.tenant_id, number)

    async def profile_of(self, number: str) -> Profile:
        customer = await self.owner_of(number)
        assert customer is not None, f"nobody has {number}"
        return await self.run(profile, customer.id)


@pytest.fixture
async def swift(db: Database, world: Demo) -> Desk:
    return Desk(db, world.tenants["swiftfreight"])


@pytest.fixture
async def seeded(swift: Desk) -> Desk:
    """SwiftFreight and Harbour with the demo customers."""
    await demo.seed(swift.db)
    return swift


@pytest.fixture
def carrier(db: Database, line: Line, settings: Settings) -> SimulatedCarrier:
    """Callers and handsets on SwiftFreight's simulated hotline, answered by the contact center."""
    providers = Providers(settings.session_secret(), settings.public_url, None, voice.answer)
    return SimulatedCarrier(db, providers, line.account, NUMBER)
