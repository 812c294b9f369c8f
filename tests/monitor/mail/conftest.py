"""Fixtures of the mail tests (the parts themselves are in mail_parts.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from mail_parts import Certificate, free_port, make_certificate, open_store

from monitor.store.database import Store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = open_store(tmp_path)
    yield s
    s.close()


@pytest.fixture
def smtp_port() -> int:
    return free_port()


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    return make_certificate(tmp_path_factory.mktemp("tls"))
