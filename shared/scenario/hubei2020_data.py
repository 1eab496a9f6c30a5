"""The 2020 Hubei relief effort as scenario data: Xiaomi's six warehouses, the Xiantao relay hub, five frontline
Wuhan hospitals, health committees of other Hubei cities, and hospitals in Europe that later received masks."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

HUB = "hub-xiantao"

WAREHOUSES = {
    "wh-beijing": ("Xiaomi Beijing warehouse", "Beijing"),
    "wh-shanghai": ("Xiaomi Shanghai warehouse", "Shanghai"),
    "wh-guangzhou": ("Xiaomi Guangzhou warehouse", "Guangzhou"),
    "wh-chengdu": ("Xiaomi Chengdu warehouse", "Chengdu"),
    "wh-wuhan": ("Xiaomi Wuhan warehouse", "Wuhan"),
    "wh-shenzhen": ("Xiaomi Shenzhen warehouse", "Shenzhen"),
}


@dataclass(frozen=True)
class RecipientData:
    recipient_id: str
    name: str
    kind: str
    frontline: bool
    city: str
    country: str

    @property
    def site_id(self) -> str:
        return f"site-{self.recipient_id}"


HOSPITALS = [
    RecipientData("jinyintan-hospital", "Wuhan Jinyintan Hospital", "hospital", True, "Wuhan", "CN"),
    RecipientData("tongji-hospital", "Wuhan Tongji Hospital", "hospital", True, "Wuhan", "CN"),
    RecipientData("xiehe-hospital", "Wuhan Union (Xiehe) Hospital", "hospital", True, "Wuhan", "CN"),
    RecipientData("renmin-hospital", "Wuhan University People's Hospital", "hospital", True, "Wuhan", "CN"),
    RecipientData("zhongnan-hospital", "Wuhan University Zhongnan Hospital", "hospital", True, "Wuhan", "CN"),
]
COMMITTEES = [
    RecipientData("hc-huanggang", "Huanggang Health Committee", "health_committee", False, "Huanggang", "CN"),
    RecipientData("hc-xiaogan", "Xiaogan Health Committee", "health_committee", False, "Xiaogan", "CN"),
    RecipientData("hc-jingzhou", "Jingzhou Health Committee", "health_committee", False, "Jingzhou", "CN"),
]
ABROAD = [
    RecipientData("milan-sacco-hospital", "Luigi Sacco Hospital, Milan", "hospital", True, "Milan", "IT"),
    RecipientData("madrid-lapaz-hospital", "La Paz University Hospital, Madrid", "hospital", True, "Madrid", "ES"),
    RecipientData("brussels-stpierre-hospital", "Saint-Pierre Hospital, Brussels", "hospital", True, "Brussels", "BE"),
]
RECIPIENTS = HOSPITALS + COMMITTEES + ABROAD

DONORS = {
    "xiaomi": ("Xiaomi Group", "company", "CN"),
    "8h-xiaoji": ("8H and Xiaoji Technology", "company", "CN"),
    "deerma": ("Deerma", "company", "CN"),
    "oppo": ("Oppo", "company", "CN"),
}

MASKS, SUITS, MATTRESS, PURIFIER, FFP2 = (
    "n95-mask",
    "protective-suit",
    "antibacterial-mattress",
    "air-purifier",
    "ffp2-mask",
)


def line(
    item: str,
    quantity: int,
    warehouse: str,
    standard: str | None,
    recipient: str | None = None,
    unit: str = "piece",
    category: str = "medical",
) -> dict[str, object]:
    return {
        "item": item,
        "quantity": quantity,
        "unit": unit,
        "standard": standard,
        "warehouse_id": warehouse,
        "designated_recipient_id": recipient,
        "category": category,
    }


XIAOMI_LINES = [
    line(MASKS, 20000, "wh-beijing", "N95", "jinyintan-hospital"),
    line(MASKS, 20000, "wh-beijing", "N95", "tongji-hospital"),
    line(MASKS, 20000, "wh-shanghai", "N95", "xiehe-hospital"),
    line(MASKS, 20000, "wh-shanghai", "N95", "renmin-hospital"),
    line(MASKS, 20000, "wh-shanghai", "N95", "zhongnan-hospital"),
    line(MASKS, 10000, "wh-beijing", "N95", "jinyintan-hospital"),
    line(SUITS, 4000, "wh-beijing", "EN 14126", "jinyintan-hospital"),
    line(SUITS, 4000, "wh-beijing", "EN 14126", "tongji-hospital"),
    line(SUITS, 4000, "wh-shanghai", "EN 14126", "xiehe-hospital"),
    line(SUITS, 4000, "wh-shanghai", "EN 14126", "renmin-hospital"),
    line(SUITS, 4000, "wh-shanghai", "EN 14126", "zhongnan-hospital"),
]

PLEDGES = {
    "xiaomi-2020-01": ("xiaomi", "Frontline protection for five Wuhan hospitals", XIAOMI_LINES),
    "8h-xiaoji-2020-01": (
        "8h-xiaoji",
        "Antibacterial mattresses for Hubei cities",
        [line(MATTRESS, 400, "wh-chengdu", None, unit="set", category="daily-necessities")],
    ),
    "deerma-2020-01": (
        "deerma",
        "Sterilising air purifiers for Hubei cities",
        [line(PURIFIER, 200, "wh-guangzhou", None, unit="set", category="equipment")],
    ),
    "oppo-2020-03": ("oppo", "Masks for hospitals in Europe", [line(FFP2, 30000, "wh-shenzhen", "FFP2")]),
}

# Scenario twists, by batch id.
REJECTED_LOT = "xiaomi-2020-01-5"  # fails N95 filtration: wholly rejected
SHORT_INTAKE = ("xiaomi-2020-01-4", 19800, "two cartons missing on arrival at the warehouse")
QUARANTINED = ("xiaomi-2020-01-11", 500)  # suits with torn packaging, released after re-inspection
REDESIGNATED = ("xiaomi-2020-01-6", "jinyintan-hospital", "zhongnan-hospital")  # batch, from, to
SHORT_DELIVERY = ("xiaomi-2020-01-8", 3950, 30, "30 suits torn in transit, 20 missing from one carton")


def deadline(days: int) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).isoformat()


def needs() -> list[dict[str, object]]:
    """Each hospital needs masks and suits; committees need mattresses and purifiers; Europe needs masks."""
    found: list[dict[str, object]] = []
    for hospital in HOSPITALS:
        found.append(need(hospital.recipient_id, MASKS, 20000, "critical", 7))
        found.append(need(hospital.recipient_id, SUITS, 4000, "critical", 7))
    found += [
        need("hc-huanggang", MATTRESS, 200, "high", 5),
        need("hc-xiaogan", MATTRESS, 150, "normal", 10),
        need("hc-jingzhou", PURIFIER, 100, "high", 6),
        need("hc-xiaogan", PURIFIER, 100, "normal", 12),
    ]
    found += [need(hospital.recipient_id, FFP2, 9000, "critical", 14) for hospital in ABROAD]
    return found


def need(recipient_id: str, item: str, quantity: int, priority: str, days: int) -> dict[str, object]:
    return {
        "need_id": f"need-{recipient_id}-{item}",
        "recipient_id": recipient_id,
        "item": item,
        "quantity": quantity,
        "priority": priority,
        "deadline": deadline(days),
    }
