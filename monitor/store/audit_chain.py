"""The audit chain's secret key and its anchor, both kept outside the database.

Theory of operation
-------------------
*Key.* Record ``n``'s hash is ``HMAC-SHA256(key, hash_{n-1} + canonical JSON of record n)``
(:func:`keyed_hash`). Without the key nobody can write a chain that verifies: changing, inserting
or deleting a record breaks the chain there, and re-chaining the records after it needs the key.
The key is ``$MONITOR_AUDIT_KEY`` (64 or more hex digits) when set, else the file named by
``$MONITOR_AUDIT_KEY_FILE``, else ``<database>.audit-key`` beside the database, created on first
use with mode 0600 (a key file that others may read is refused). The database keeps only the key's
fingerprint (:attr:`AuditKey.key_id`), so a wrong key is named as such.

*Anchor.* Whoever holds the key, or simply cuts records off the end, can still leave a shorter
chain that verifies. So after every commit the writer appends ``<records> <head hash> <unix
time>`` to the checkpoint file ``<database>.audit-checkpoints`` (or ``$MONITOR_AUDIT_CHECKPOINT``)
and fsyncs it (:class:`Checkpoints`). ``monitor audit verify`` checks every line against the chain:
a line that counts more records than the database holds means records were deleted from the end;
a line whose head differs from that record's hash means the chain was rewritten at or before it.
Records that a writer had to give up on (the server stopped while the disk was full) are noted as
``lost <records> <unix time> <why>``, so the chain is never reported intact when records were
lost (a small reserve file beside the checkpoints is deleted to make room for that note on a
full disk). Appends are single ``O_APPEND`` writes under an exclusive ``flock`` (several processes may
write); past ``MAX_BYTES`` the file is compacted to its header, its ``lost`` lines and its newest
checkpoint. A checkpoint written after the commit may lag the database (a crash in between),
never lead it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import hmac
import os
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from monitor.store.database import StoreError

KEY_ENV = "MONITOR_AUDIT_KEY"
KEY_FILE_ENV = "MONITOR_AUDIT_KEY_FILE"
CHECKPOINT_ENV = "MONITOR_AUDIT_CHECKPOINT"
KEY_BYTES = 32
MAX_BYTES = 1 << 20
RESERVE_BYTES = 64 * 1024
HEADER = "# monitor audit checkpoints"


def keyed_hash(key: bytes, prev_hash: str, canonical_body: str) -> str:
    return hmac.new(key, (prev_hash + canonical_body).encode("utf-8"), hashlib.sha256).hexdigest()


def key_path(db_path: Path) -> Path:
    given = os.environ.get(KEY_FILE_ENV)
    return Path(given) if given else db_path.with_name(db_path.name + ".audit-key")


def checkpoint_path(db_path: Path) -> Path:
    given = os.environ.get(CHECKPOINT_ENV)
    return Path(given) if given else db_path.with_name(db_path.name + ".audit-checkpoints")


@dataclass(frozen=True, slots=True)
class AuditKey:
    secret: bytes
    source: str  # where it came from, for messages (never the key itself)

    @property
    def key_id(self) -> str:
        return hmac.new(self.secret, b"monitor audit key id", hashlib.sha256).hexdigest()[:16]


def _parse_key(text: str, source: str) -> AuditKey:
    try:
        secret = bytes.fromhex(text.strip())
    except ValueError:
        secret = b""
    if len(secret) < KEY_BYTES:
        raise StoreError(f"audit key {source}: expected {2 * KEY_BYTES} or more hex digits")
    return AuditKey(secret, source)


def load_key(db_path: Path, *, create: bool) -> AuditKey | None:
    """The audit key; None when there is none and ``create`` is False. ``create``: write a new key
    file (0600) when there is none (only for a chain that is not keyed yet)."""
    given = os.environ.get(KEY_ENV)
    if given:
        return _parse_key(given, f"${KEY_ENV}")
    path = key_path(db_path)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        if not create:
            return None
        return _create_key(path)
    except OSError as exc:
        raise StoreError(f"audit key file {path}: {exc.strerror}") from None
    if mode & 0o077:
        raise StoreError(f"audit key file {path} may be read by others (mode {mode & 0o777:o}); chmod 600 it")
    try:
        return _parse_key(path.read_text(encoding="ascii"), str(path))
    except (OSError, UnicodeDecodeError) as exc:
        raise StoreError(f"audit key file {path}: cannot read it: {exc}") from None


def _create_key(path: Path) -> AuditKey:
    text = secrets.token_hex(KEY_BYTES) + "\n"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first: use theirs
        return _parse_key(path.read_text(encoding="ascii"), str(path))
    try:
        os.write(fd, text.encode("ascii"))
        os.fsync(fd)
    finally:
        os.close(fd)
    _fsync_dir(path.parent)
    return AuditKey(bytes.fromhex(text), str(path))


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(frozen=True, slots=True)
class Checkpoint:
    records: int
    head: str
    at: float


@dataclass(frozen=True, slots=True)
class Lost:
    records: int
    at: float
    why: str


@dataclass(frozen=True, slots=True)
class CheckpointFile:
    chain_id: str | None
    checkpoints: tuple[Checkpoint, ...]
    lost: tuple[Lost, ...]
    problem: str | None = None  # a line that does not parse (altered)


class Checkpoints:
    """The checkpoint file of one chain (``chain_id``) at ``path``."""

    def __init__(self, path: Path, chain_id: str) -> None:
        self.path = path
        self.chain_id = chain_id

    def header(self) -> str:
        return (
            f"{HEADER} of chain {self.chain_id}: '<records> <head hash> <unix time>' after each commit, "
            "'lost <records> <unix time> <why>' for records never written. Append-only.\n"
        )

    @property
    def reserve(self) -> Path:
        """Space kept free for a ``lost`` line on a full disk: deleted to make room for it."""
        return self.path.with_name(self.path.name + ".reserve")

    def start(self) -> None:
        """A new chain: an existing file (of a database that was replaced) is moved aside."""
        if self.path.exists():
            self.path.rename(self.path.with_name(f"{self.path.name}.{int(time.time())}.old"))
        self._append("")
        self._keep_reserve()

    def checkpoint(self, records: int, head: str) -> None:
        self._append(f"{records} {head} {time.time():.3f}\n")
        self._keep_reserve()

    def lost(self, records: int, why: str) -> None:
        line = f"lost {records} {time.time():.3f} {' '.join(why.split())}\n"
        try:
            self._append(line)
        except OSError as exc:
            if exc.errno != errno.ENOSPC or not self.reserve.exists():
                raise
            self.reserve.unlink()  # what the reserve is for: this line, on a full disk
            self._append(line)

    def _keep_reserve(self) -> None:
        if self.reserve.exists():
            return
        try:
            with open(self.reserve, "wb") as f:
                f.write(bytes(RESERVE_BYTES))
                f.flush()
                os.fsync(f.fileno())
        except OSError:  # no room for it now: made again after a later checkpoint
            self.reserve.unlink(missing_ok=True)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[int]:
        """The file, open for appending under an exclusive lock (reopened if compacted meanwhile)."""
        while True:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                try:
                    same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
                except FileNotFoundError:
                    same = False
                if same:
                    yield fd
                    return
            finally:
                os.close(fd)

    def _append(self, line: str) -> None:
        with self._locked() as fd:
            size = os.fstat(fd).st_size
            if size + len(line) > MAX_BYTES:
                self._compact(line)
                return
            if size == 0:
                line = self.header() + line
            os.write(fd, line.encode("utf-8"))
            os.fsync(fd)

    def _compact(self, line: str) -> None:
        """Rewrite the file as its header, its lost lines, its newest checkpoint and ``line``
        (under the lock; appenders waiting on the old file reopen the new one)."""
        found = read_checkpoints(self.path)
        kept = [f"lost {x.records} {x.at:.3f} {x.why}\n" for x in found.lost]
        if found.checkpoints:
            newest = max(found.checkpoints, key=lambda c: c.records)
            kept.append(f"{newest.records} {newest.head} {newest.at:.3f}\n")
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(self.header() + "".join(kept) + line)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        _fsync_dir(self.path.parent)


def read_checkpoints(path: Path) -> CheckpointFile:
    """The file's lines; a line that does not parse is reported (an incomplete last line, left by
    a crash mid-write, is ignored)."""
    text = path.read_text(encoding="utf-8", errors="replace")
    lines = text.split("\n")
    if not text.endswith("\n"):
        lines = lines[:-1]  # incomplete (or empty) last line
    chain_id: str | None = None
    checkpoints: list[Checkpoint] = []
    lost: list[Lost] = []
    for number, line in enumerate(lines, 1):
        if not line:
            continue
        if line.startswith(HEADER):
            words = line.removeprefix(HEADER).split()
            chain_id = words[2].rstrip(":") if len(words) > 2 and words[:2] == ["of", "chain"] else None
            continue
        if line.startswith("#"):  # a comment (an operator's note)
            continue
        words = line.split(" ", 3)
        try:
            if words[0] == "lost":
                lost.append(Lost(int(words[1]), float(words[2]), words[3] if len(words) > 3 else ""))
                continue
            if len(words) == 3 and len(words[1]) == 64:
                checkpoints.append(Checkpoint(int(words[0]), words[1], float(words[2])))
                continue
        except (ValueError, IndexError):
            pass
        return CheckpointFile(chain_id, tuple(checkpoints), tuple(lost), f"{path} line {number} is malformed")
    return CheckpointFile(chain_id, tuple(checkpoints), tuple(lost))
