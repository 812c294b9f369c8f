"""Uploads on the family socket: face photos, ID photos and proofs of address.

An ``upload`` message announces the file: its kind, whose it is and its size. Everything that can
be refused without the bytes is refused then (an unknown person, a kind that person cannot give,
a file over ``MAX_UPLOAD_BYTES``), so a 50 MB file is turned down before one byte of it travels;
the socket then accepts exactly one binary frame of the announced size (``connection.py`` sets
the WebSocket's frame limit to it, so a bigger frame is refused by its header, unread).

The bytes decide what the file is (``images.py``): face and ID photos are JPEG or PNG within the
pixel limits, a proof of address may also be a PDF. Photos are enrolled in the photo checker's
process (``photos.py``): a face photo without exactly one usable face is refused at once, saying
why. A face photo is kept (normalised, without metadata) as the person's reference photo under
``<data dir>/photos/``; ID photos and proofs of address are encrypted into the document vault.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

from monitor.family import api, images
from monitor.family.context import FamilyParts
from monitor.family.photos import PhotoRefused
from monitor.store import family_accounts as accounts
from monitor.store.database import Photo
from monitor.store.family_common import Refused, new_id

MAX_UPLOAD_BYTES = 10 * 1024 * 1024
KINDS_TAKEN = {
    "face_photo": (images.JPEG, images.PNG),
    "id_document": (images.JPEG, images.PNG),
    "proof_of_address": (images.JPEG, images.PNG, images.PDF),
}


def _mb(size: int) -> str:
    return f"{size / 1024 / 1024:.1f}".removesuffix(".0")


def announce(parts: FamilyParts, account_id: str, upload: api.Upload) -> dict[str, Any]:
    """Check an announced upload before its bytes come; the ``ok`` fields (``ready``)."""
    if upload.size > MAX_UPLOAD_BYTES:
        raise Refused(
            "too_big",
            f"this file is {_mb(upload.size)} MB; the most we take is {_mb(MAX_UPLOAD_BYTES)} MB: "
            "send a smaller photo or scan",
        )
    if upload.kind == "face_photo":
        person = accounts.person(parts.store, account_id, upload.person)
        if person.status == "approved":
            raise Refused("already_approved", "this person is approved; ask the prison to change their photo")
    else:
        accounts.check_document(parts.store, account_id, upload.person, upload.kind)
    return {"ready": True, "max_bytes": upload.size}


def _kind(data: bytes, kind: str) -> str:
    try:
        content_type = images.sniff(data)
        if content_type == images.PDF and images.PDF in KINDS_TAKEN[kind]:
            return content_type
        return images.check_image(data)
    except images.ImageError as exc:
        what = "a JPEG or PNG photo" if kind != "proof_of_address" else "a JPEG or PNG photo, or a PDF"
        raise Refused("bad_file", f"{exc} (we take {what})") from None


def _keep_face(parts: FamilyParts, jpeg: bytes) -> tuple[str, str]:
    """Write the normalised face photo under the data directory; (relative path, SHA-256)."""
    digest = hashlib.sha256(jpeg).hexdigest()
    folder = parts.store.data_dir / "photos"
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{digest}.jpg"
    if not target.exists():
        tmp = target.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(jpeg)
        os.replace(tmp, target)
    return f"photos/{target.name}", digest


async def receive(parts: FamilyParts, account_id: str, upload: api.Upload, data: bytes) -> dict[str, Any]:
    """The announced file's bytes: checked, enrolled when it is a photo, stored; the ``ok`` fields."""
    if len(data) != upload.size:
        raise Refused(
            "wrong_size", f"the file was {len(data)} bytes, not the {upload.size} announced; send it again"
        )
    content_type = _kind(data, upload.kind)
    store = parts.store
    if upload.kind == "face_photo":
        try:
            checked = await parts.photos.check(data, "face_photo")
        except PhotoRefused as exc:
            raise Refused("photo_refused", str(exc)) from None
        assert checked.jpeg is not None
        path, digest = _keep_face(parts, checked.jpeg)
        accounts.set_face(store, account_id, upload.person, Photo(path, digest, checked.embedding))
        return {"person": upload.person, "kind": upload.kind}
    embedding = None
    if upload.kind == "id_document":
        try:
            embedding = (await parts.photos.check(data, "id_document")).embedding
        except PhotoRefused as exc:
            raise Refused("photo_refused", str(exc)) from None
    document = accounts.NewDocument(
        new_id("doc"), upload.kind, hashlib.sha256(data).hexdigest(), content_type, len(data), embedding
    )
    parts.vault.write(document.id, data)
    try:
        replaced = accounts.add_document(store, account_id, upload.person, document)
    except BaseException:
        parts.vault.delete(document.id)
        raise
    for old in replaced:
        parts.vault.delete(old)
    return {"person": upload.person, "kind": upload.kind}
