"""What the families' handlers share: the store, the policy, the document vault, the photo
checker, the mailer and where links point (one :class:`FamilyParts`, made by ``app.py``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from http.cookies import CookieError, SimpleCookie

from websockets.datastructures import Headers

from monitor.family.photos import PhotoChecker
from monitor.store.database import Store
from monitor.store.documents import DocumentVault
from monitor.store.family_common import Mailer
from policies.config import PolicyConfig

COOKIE = "family_session"


@dataclass
class FamilyParts:
    store: Store
    config: PolicyConfig
    vault: DocumentVault
    photos: PhotoChecker
    mailer: Mailer
    public_url: Callable[[], str]  # where families reach the server: links in e-mails and on the pages

    @property
    def base_url(self) -> str:
        return self.public_url()

    def link(self, path: str) -> str:
        return f"{self.base_url.rstrip('/')}{path}"


def session_token(headers: Headers) -> str | None:
    raw = headers.get("Cookie")
    if not raw:
        return None
    try:
        jar = SimpleCookie(raw)
    except CookieError:
        return None
    morsel = jar.get(COOKIE)
    return morsel.value if morsel else None
