"""The recipient service: registering recipients and their needs, who may, and what is refused."""

from __future__ import annotations

from typing import Any

from shared.events import reference_events as ref
from tests.harness import ServiceHandle, wait_until
from tests.integration.recipient.support import (
    FUTURE,
    HUANGGANG,
    JINYINTAN,
    add_need,
    all_published,
    error_of,
    read_to_end,
    register,
    staff_of,
    stored_events,
)

# --- recipients ------------------------------------------------------------------------------------------


async def test_registers_a_frontline_hospital_and_a_health_committee_with_their_facilities(
    service: ServiceHandle,
) -> None:
    hospital = await register(service, JINYINTAN)
    committee = await register(service, HUANGGANG)
    assert hospital.status_code == 201, hospital.text
    assert committee.status_code == 201, committee.text
    assert committee.json()["country"] == "CN", "country codes are stored upper-case"

    frontline = (await service.get("/recipients", params={"frontline": "true"})).json()
    assert [r["recipient_id"] for r in frontline["items"]] == ["jinyintan-hospital"]
    committees = (await service.get("/recipients", params={"kind": "health_committee", "country": "cn"})).json()
    assert [r["recipient_id"] for r in committees["items"]] == ["huanggang-health-committee"]
    assert (await service.get("/recipients", params={"country": "IT"})).json()["total"] == 0
    one = await service.get("/recipients/jinyintan-hospital")
    assert one.json()["site_id"] == "jinyintan-receiving"

    registered = await stored_events(service, ref.RecipientRegistered.event_type)
    sites = await stored_events(service, ref.SiteRegistered.event_type)
    assert [e.stream_id for e in registered] == ["jinyintan-hospital", "huanggang-health-committee"]
    assert [e.stream_id for e in sites] == ["jinyintan-receiving", "huanggang-depot"]
    site = ref.SiteRegistered.model_validate_json(sites[0].data)
    assert (site.kind, site.recipient_id) == (ref.SiteKind.RECIPIENT_FACILITY, "jinyintan-hospital")
    assert sites[0].causation_id == registered[0].event_id, "the facility is registered because of the recipient"
    assert {e.actor for e in registered + sites} == {"admin:tester"}

    await wait_until(lambda: all_published(service), what="recipient events published")
    published = await read_to_end(service.settings, service.settings.reference_topic)
    assert sorted(e.subject for e in published) == sorted(
        ["jinyintan-hospital", "jinyintan-receiving", "huanggang-health-committee", "huanggang-depot"]
    )


async def test_recipient_registration_is_admin_only_unique_and_idempotent(service: ServiceHandle) -> None:
    staff = await register(service, JINYINTAN, headers=staff_of(service, "jinyintan-hospital"))
    assert staff.status_code == 403
    assert "allowed roles: admin" in error_of(staff)["message"]

    key = {"Idempotency-Key": "register-jinyintan"}
    first = await register(service, JINYINTAN, headers=key)
    replay = await register(service, JINYINTAN, headers=key)
    assert first.status_code == replay.status_code == 201
    assert replay.json() == first.json()
    assert replay.headers["Idempotent-Replay"] == "true"
    assert len(await stored_events(service, ref.RecipientRegistered.event_type)) == 1

    again = await register(service, JINYINTAN)
    assert again.status_code == 409
    assert "already registered" in error_of(again)["message"]
    same_site = await register(service, {**HUANGGANG, "site_id": "jinyintan-receiving"})
    assert same_site.status_code == 409
    assert "already the facility of recipient jinyintan-hospital" in error_of(same_site)["message"]
    other_body = await register(service, HUANGGANG, headers=key)
    assert other_body.status_code == 422
    assert "Idempotency-Key was already used" in error_of(other_body)["message"]


BAD_RECIPIENTS: list[tuple[dict[str, Any], str, str]] = [
    ({"kind": "clinic"}, "body.kind", "'hospital', 'health_committee' or 'civil_protection'"),
    ({"country": "China"}, "body.country", "pattern"),
    ({"site_id": "jinyintan hospital"}, "body.site_id", "pattern"),
    ({"name": ""}, "body.name", "at least 1 character"),
    ({"frontline": None}, "body.frontline", "valid boolean"),
]


async def test_bad_recipients_are_refused_with_a_clear_422_naming_the_field(service: ServiceHandle) -> None:
    for change, field, words in BAD_RECIPIENTS:
        response = await register(service, {**JINYINTAN, **change})
        assert response.status_code == 422, change
        problems = error_of(response)["problems"]
        assert [p["field"] for p in problems] == [field], change
        assert words in problems[0]["problem"], change
    same_ids = await register(service, {**JINYINTAN, "site_id": "jinyintan-hospital"})
    assert same_ids.status_code == 422
    assert "site_id must differ from recipient_id" in error_of(same_ids)["message"]
    assert await stored_events(service, ref.RecipientRegistered.event_type) == []


# --- needs -----------------------------------------------------------------------------------------------


async def test_needs_are_listed_most_urgent_first_with_what_remains(service: ServiceHandle) -> None:
    await register(service, JINYINTAN)
    await register(service, HUANGGANG)
    await add_need(service, need_id="jyt-gloves", recipient_id="jinyintan-hospital", item="gloves", priority="low")
    await add_need(
        service,
        need_id="jyt-n95",
        recipient_id="jinyintan-hospital",
        quantity=20000,
        priority="critical",
        deadline=FUTURE,
    )
    await add_need(
        service,
        need_id="hg-suits",
        recipient_id="huanggang-health-committee",
        item="protective-suit",
        quantity=3000,
        priority="high",
    )
    await add_need(
        service,
        need_id="jyt-n95-soon",
        recipient_id="jinyintan-hospital",
        quantity=5000,
        priority="critical",
        deadline="2099-01-01T00:00:00Z",
    )

    listed = (await service.get("/needs")).json()
    assert [n["need_id"] for n in listed["items"]] == ["jyt-n95-soon", "jyt-n95", "hg-suits", "jyt-gloves"]
    first = listed["items"][0]
    assert (first["quantity"], first["received"], first["remaining"], first["status"]) == (5000, 0, 5000, "open")
    assert first["deadline"].startswith("2099-01-01T00:00:00")

    mine = (await service.get("/needs", params={"recipient_id": "jinyintan-hospital", "item": "n95-mask"})).json()
    assert {n["need_id"] for n in mine["items"]} == {"jyt-n95", "jyt-n95-soon"}
    assert (await service.get("/needs", params={"status": "fulfilled"})).json()["total"] == 0
    paged = (await service.get("/needs", params={"limit": 3, "offset": 3})).json()
    assert (paged["total"], len(paged["items"]), paged["next_offset"]) == (4, 1, None)
    stored = await stored_events(service, ref.NeedRegistered.event_type)
    assert len(stored) == 4 and {e.actor for e in stored} == {"admin:tester"}


async def test_recipient_staff_register_needs_only_for_their_own_recipient(service: ServiceHandle) -> None:
    await register(service, JINYINTAN)
    await register(service, HUANGGANG)
    body = {"recipient_id": "jinyintan-hospital", "item": "n95-mask", "quantity": 100, "priority": "high"}
    own = await service.post("/needs", json=body, headers=staff_of(service, "jinyintan-hospital"))
    assert own.status_code == 201, own.text
    (event,) = await stored_events(service, ref.NeedRegistered.event_type)
    assert event.actor == "recipient_staff:nurse-chen"

    other = await service.post("/needs", json=body, headers=staff_of(service, "huanggang-health-committee"))
    assert other.status_code == 403
    assert "may not act for recipient 'jinyintan-hospital'" in error_of(other)["message"]
    historical = {**body, "deadline": "2020-02-05T18:00:00+08:00", "historical": True}
    backfill = await service.post("/needs", json=historical, headers=staff_of(service, "jinyintan-hospital"))
    assert backfill.status_code == 403
    assert (await service.post("/needs", json=historical)).status_code == 201, "an admin may backfill 2020"
    assert len(await stored_events(service, ref.NeedRegistered.event_type)) == 2


BAD_NEEDS: list[tuple[dict[str, Any], str]] = [
    ({"quantity": 0}, "body.quantity: Input should be greater than 0"),
    ({"quantity": -5}, "body.quantity: Input should be greater than 0"),
    ({"priority": "urgent"}, "'critical', 'high', 'normal' or 'low'"),
    ({"deadline": "next friday"}, "'next friday' is not an RFC 3339 timestamp"),
    ({"deadline": "2099-02-05T18:00:00"}, "is not an RFC 3339 timestamp; use an RFC 3339 timestamp with a time zone"),
    ({"deadline": 4073508000}, "is not an RFC 3339 timestamp"),
    ({"deadline": "2099-02-30T18:00:00Z"}, "not a real calendar date"),
    ({"deadline": "2020-02-05T18:00:00+08:00"}, "is in the past"),
    ({"recipient_id": "nowhere-hospital"}, "recipient nowhere-hospital is not registered"),
]


async def test_bad_needs_are_refused_with_a_clear_422(service: ServiceHandle) -> None:
    await register(service, JINYINTAN)
    for change, words in BAD_NEEDS:
        body = {"recipient_id": "jinyintan-hospital", "item": "n95-mask", "quantity": 100, "priority": "high", **change}
        response = await service.post("/needs", json=body)
        assert response.status_code == 422, (change, response.text)
        assert words in error_of(response)["message"], (change, response.text)
    assert await stored_events(service, ref.NeedRegistered.event_type) == []
