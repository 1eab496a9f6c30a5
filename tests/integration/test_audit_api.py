"""The read-only audit API: auditor and admin tokens only (401 without a token), over the real broker."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest

from services.audit.bootstrap import create
from services.audit.craft import CraftedLog
from services.audit.scenario import Lifecycle, clean_lifecycle
from shared.events.envelope import format_time
from shared.settings import Settings
from shared.web.auth import Role, mint_token
from tests.unit.test_audit_epcis import validate_document

pytestmark = pytest.mark.kafka


@dataclass
class AuditApi:
    http: httpx.AsyncClient
    settings: Settings
    log: CraftedLog
    life: Lifecycle

    def auth(self, role: Role) -> dict[str, str]:
        return {"Authorization": f"Bearer {mint_token('tester', role, settings=self.settings)}"}

    async def get(self, path: str, role: Role = Role.auditor, **params: str) -> httpx.Response:
        return await self.http.get(path, headers=self.auth(role), params=params)


@pytest.fixture
async def api(kafka_bootstrap: str, topic_prefix: str) -> AsyncIterator[AuditApi]:
    settings = Settings(topic_prefix=topic_prefix, kafka_bootstrap=kafka_bootstrap)
    log = CraftedLog(settings)
    life = clean_lifecycle(log)
    await log.publish()
    transport = httpx.ASGITransport(app=create(settings))
    async with httpx.AsyncClient(transport=transport, base_url="http://audit") as http:
        yield AuditApi(http, settings, log, life)


async def test_routes_refuse_callers_without_an_auditor_or_admin_token(api: AuditApi) -> None:
    for path in ("/audit/report", "/audit/verify", "/audit/epcis", f"/audit/batches/{api.life.root}"):
        response = await api.http.get(path)
        assert response.status_code == 401 and response.json()["error"]["code"] == "unauthenticated"
        assert (await api.get(path, Role.operator)).status_code == 403
    assert (await api.http.post("/audit/report", headers=api.auth(Role.auditor))).status_code == 405
    assert (await api.http.get("/health/live")).status_code == 200


async def test_report_as_of_a_moment(api: AuditApi) -> None:
    full = await api.get("/audit/report", Role.admin, now=format_time(api.log.clock))
    assert full.status_code == 200 and full.json()["ok"] is True
    assert full.json()["batches"][api.life.child]["state"]["status"] == "confirmed"
    earlier = await api.get("/audit/report", as_of=format_time(api.life.moments["arrived"]))
    assert earlier.json()["batches"][api.life.child]["state"]["status"] == "at_hub"
    markdown = await api.get("/audit/report.md", now=format_time(api.log.clock))
    assert markdown.text.startswith("# aidtrail audit report")
    assert "<svg" in (await api.get("/audit/report.html")).text


async def test_batch_verify_and_epcis(api: AuditApi) -> None:
    batch = await api.get(f"/audit/batches/{api.life.child}")
    assert batch.status_code == 200
    body = batch.json()
    assert len(body["timeline"]) == 8 and body["custody"][-1]["holder_kind"] == "recipient"
    assert body["lineage"]["batch_id"] == api.life.root
    assert (await api.get("/audit/batches/b-nope")).status_code == 404
    verify = await api.get("/audit/verify")
    assert verify.json()["ok"] is True and set(verify.json()["chains"]) == {
        "pledge",
        "warehouse",
        "dispatch",
        "recipient",
    }
    epcis = await api.get("/audit/epcis")
    assert epcis.headers["content-type"].startswith("application/ld+json")
    assert validate_document(epcis.json()) == []
