"""ID documents and proofs of address: encrypted at rest, outside the database, deleted on time.

Theory of operation
-------------------
Each document's bytes are encrypted with AES-256-GCM under one *document key*, with a fresh random
96-bit nonce per file and the document's id as associated data (a file copied over another
document's name fails to decrypt instead of showing the wrong person's papers). A file is
``<data dir>/documents/<id>.bin`` = nonce + ciphertext + tag, written to a temporary file, flushed to
disk and renamed, so a crash leaves the old state or the new, never half a document.

The key is 32 random bytes, from ``$MONITOR_DOCUMENT_KEY`` (base64) when it is set, else from the
file ``<database stem>-documents.key`` beside the database (``monitor.db`` ->
``monitor-documents.key``), created with mode 0600 the first time it is needed. A key file that
others may read is refused. The key is in neither the database nor the data directory, so a copy
of either alone (a backup, a stolen disk image of the data folder) reveals no document.

Retention: :func:`purge_expired` deletes the file of every document whose ``delete_after`` has
passed (set once the account or the person was verified or refused, see ``family_staff.py``) and
marks its row deleted; the server runs it periodically. The row (hash, kind, times) stays, so the
audit records that name the document's hash still say what was checked.

This module never audits: reading a document for staff goes through ``family_staff.read_document``,
which writes the ``document_viewed`` record first.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import secrets
import stat
import time
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from monitor.store.database import Store, StoreError

KEY_ENV = "MONITOR_DOCUMENT_KEY"
KEY_BYTES = 32
NONCE_BYTES = 12
_ID = re.compile(r"^[a-z]+-[0-9a-f]{12}$")


def key_path(store: Store) -> Path:
    return store.path.with_name(f"{store.path.stem}-documents.key")


def load_key(store: Store) -> bytes:
    """The document key: ``$MONITOR_DOCUMENT_KEY``, else the key file (made on first need)."""
    text = os.environ.get(KEY_ENV)
    if text:
        try:
            key = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            key = b""
        if len(key) != KEY_BYTES:
            raise StoreError(f"${KEY_ENV}: must be {KEY_BYTES} random bytes in base64")
        return key
    path = key_path(store)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read_key_file(path)
    key = secrets.token_bytes(KEY_BYTES)
    with os.fdopen(fd, "wb") as handle:
        handle.write(base64.b64encode(key) + b"\n")
        handle.flush()
        os.fsync(handle.fileno())
    return key


def _read_key_file(path: Path) -> bytes:
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise StoreError(f"{path}: the document key must be readable by its owner only (chmod 600 {path})")
    try:
        key = base64.b64decode(path.read_bytes().strip(), validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != KEY_BYTES:
        raise StoreError(f"{path}: not a document key ({KEY_BYTES} random bytes in base64)")
    return key


class DocumentVault:
    """The encrypted document files of one store."""

    def __init__(self, store: Store, key: bytes | None = None) -> None:
        self.store = store
        self._aead = AESGCM(key if key is not None else load_key(store))

    @property
    def folder(self) -> Path:
        return self.store.data_dir / "documents"

    def path(self, document_id: str) -> Path:
        if not _ID.match(document_id):
            raise StoreError(f"{document_id!r} is not a document id")
        return self.folder / f"{document_id}.bin"

    def write(self, document_id: str, data: bytes) -> None:
        path = self.path(document_id)
        nonce = secrets.token_bytes(NONCE_BYTES)
        sealed = nonce + self._aead.encrypt(nonce, data, document_id.encode("ascii"))
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(sealed)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)

    def read(self, document_id: str) -> bytes:
        path = self.path(document_id)
        try:
            sealed = path.read_bytes()
        except FileNotFoundError:
            raise StoreError(
                f"document {document_id}: its file is gone (deleted after the retention period)"
            ) from None
        try:
            return self._aead.decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], document_id.encode("ascii"))
        except InvalidTag:
            raise StoreError(
                f"document {document_id}: cannot be decrypted "
                "(a different document key, or the file was altered)"
            ) from None

    def delete(self, document_id: str) -> None:
        self.path(document_id).unlink(missing_ok=True)


ORPHAN_AFTER_S = 3600.0


def purge_expired(store: Store, vault: DocumentVault) -> int:
    """Delete the files of documents past their ``delete_after``, of replaced ones, and files that
    no document row names (an upload refused or interrupted after its file was written, an hour
    on); return how many files were deleted."""
    now = store.clock()
    live = {r[0] for r in store.db.execute("SELECT id FROM family_documents WHERE deleted_at IS NULL")}
    orphans = 0
    for path in vault.folder.glob("*.bin") if vault.folder.is_dir() else ():
        if path.stem not in live and path.stat().st_mtime < time.time() - ORPHAN_AFTER_S:
            path.unlink(missing_ok=True)
            orphans += 1
    rows = store.db.execute(
        "SELECT id FROM family_documents WHERE deleted_at IS NULL"
        " AND ((delete_after IS NOT NULL AND delete_after <= ?) OR replaced_at IS NOT NULL)",
        (now,),
    ).fetchall()
    for row in rows:
        vault.delete(row["id"])
        with store.transaction() as db:
            db.execute("UPDATE family_documents SET deleted_at = ? WHERE id = ?", (now, row["id"]))
    return len(rows) + orphans
