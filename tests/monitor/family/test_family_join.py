"""A call a family booked on its page is an ordinary booking: its join link, asked for once the call
opens, joins the live call on the same server (real time, real server, real signalling socket).

The prison's timetable is set to one call starting two minutes from now, in a time zone where that
is the middle of the day, so the slot is bookable and its link already works."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from support.family_site import (
    OBAMA,
    PRISONER,
    FamilyClient,
    MemoryMailer,
    prison_with_staff,
    verified_family,
)

from monitor.server.serve import Server
from monitor.store.database import Store
from monitor.store.documents import DocumentVault
from monitor.store.family_staff import change_settings
from policies.config import load_policy
from policies.slots import DAYS
from signalling.client import Device

ZONES = ("Europe/London", "Asia/Tokyo", "America/New_York", "Asia/Kolkata", "Australia/Sydney")


def daytime_zone(moment: datetime) -> ZoneInfo:
    """A time zone where ``moment`` is between 01:00 and 22:00 (a slot then ends before midnight)."""
    return next(ZoneInfo(z) for z in ZONES if 1 <= moment.astimezone(ZoneInfo(z)).hour < 22)


async def test_a_booked_familys_link_joins_the_live_call(tmp_path: object) -> None:
    store = Store(tmp_path / "monitor.db")  # type: ignore[operator]
    officer, governor = prison_with_staff(store)
    mailer = MemoryMailer()
    _, holder, contact = verified_family(store, DocumentVault(store), officer, mailer, photo=OBAMA)
    start = (datetime.now(UTC) + timedelta(minutes=2)).replace(second=0, microsecond=0)
    tz = daytime_zone(start)
    local = start.astimezone(tz)
    change_settings(store, governor, time_zone=tz.key, timetable={DAYS[local.weekday()]: [f"{local:%H:%M}"]})
    server = Server([], load_policy(), port=0, analysis_workers=0, store=store)
    server.mailer = mailer
    await server.start()
    device = None
    try:
        family = FamilyClient(server.port)
        assert (await family.login("jane@example.org"))[0] == 200
        await family.connect()
        [slot] = (await family.ask("slots", contact=contact))["slots"]
        assert slot["starts_at"] == local.isoformat()
        booked = await family.ask(
            "book", contact=contact, starts_at=slot["starts_at"], people=[holder], main=holder
        )
        call_id = booked["call"]["call_id"]
        [call] = (await family.ask("status"))["calls"]
        assert call["can_join"] is True and call["people"] == [
            {"id": holder, "name": "Jane Smith", "main": True}
        ]
        url = (await family.ask("join_link", call_id=call_id, person=holder))["url"]
        assert url.startswith(f"http://127.0.0.1:{server.port}/join/")
        device = Device(f"ws://127.0.0.1:{server.port}/ws/call")
        await device.open()
        joined = await device.join(url.rsplit("/join/", 1)[1])
        assert joined["type"] == "joined" and joined["call_id"] == call_id, joined
        # the link in the confirmation e-mail is another working token for the same seat
        mailed = mailer.last("call_booked")["links"][0]["url"]
        grant = store.join_token(mailed.rsplit("/join/", 1)[1])
        assert grant is not None and (grant.call_id, grant.role) == (call_id, "visitor")
        assert store.booking(call_id) is not None and PRISONER[0] == store.booking(call_id).prisoner_id  # type: ignore[union-attr]
        await family.close()
    finally:
        if device is not None:
            await device.close()
        await server.stop()
        store.close()
