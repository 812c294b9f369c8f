"""The embedded default: each message written as one ``.eml`` file into an outbox folder.

A file appears whole or not at all: it is written under a temporary name starting with a dot (which
mail tools and ``*.eml`` globs skip), flushed to disk, then renamed. Its name is fixed by the queued
message (time queued, queue id, kind, Message-ID token), so writing it again after a restart
replaces it instead of making a second copy.
"""

from __future__ import annotations

import contextlib
import os
from datetime import UTC, datetime
from pathlib import Path

from monitor.mail.messages import MailError
from monitor.mail.transport import Outgoing, error_text


def file_name(item: Outgoing) -> str:
    stamp = datetime.fromtimestamp(item.created_at, UTC).strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{item.mail_id:06d}-{item.kind}-{item.message_token[:8]}.eml"


class OutboxTransport:
    delivered = "written"

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def describe(self) -> str:
        return f"outbox folder {self.folder} (one .eml file per message)"

    def where(self) -> dict[str, str]:
        return {"mail_outbox": str(self.folder.resolve())}

    def prepare(self) -> None:
        """Create the folder (a clear error if it cannot be)."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise MailError(f"mail outbox {self.folder}: cannot create the folder: {exc.strerror}") from None

    def send(self, batch: list[Outgoing]) -> list[str | None]:
        results: list[str | None] = []
        for item in batch:
            try:
                self._write(item)
            except OSError as exc:
                results.append(f"cannot write to the outbox {self.folder}: {error_text(exc)}")
            else:
                results.append(None)
        return results

    def _write(self, item: Outgoing) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        target = self.folder / file_name(item)
        temporary = self.folder / f".{target.name}.{os.getpid()}.tmp"
        try:
            with open(temporary, "wb") as f:
                f.write(item.message.as_bytes())
                f.flush()
                os.fsync(f.fileno())
            os.replace(temporary, target)
        except BaseException:
            with contextlib.suppress(OSError):
                temporary.unlink()
            raise
        directory = os.open(self.folder, os.O_RDONLY)
        try:
            os.fsync(directory)  # the rename itself survives a power cut
        finally:
            os.close(directory)
