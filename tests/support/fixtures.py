"""Fixtures any test may ask for by name: the root conftest.py loads this module as a pytest plugin
(``pytest_plugins``), so no test room needs its own copy."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from support import ice

if TYPE_CHECKING:
    from support.postgres import PostgresServer

ENGINES = ("sqlite", "postgresql")


@pytest.fixture
def loopback_ice() -> Iterator[None]:
    """Real aiortc peers in the test connect over 127.0.0.1 (see ``support.ice``)."""
    with ice.loopback_ice():
        yield


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    """A real PostgreSQL server for the session (``support.postgres``). Skipped only where its
    binaries are not installed, and never in CI (``make test`` installs them). A PostgreSQL store's
    own files go to a temporary folder unless a test names one (``store_at`` does), never to the
    working directory."""
    from monitor.store.sql import STORE_DIR_ENV
    from support.postgres import PostgresServer, binaries

    found = binaries()
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL is not installed: `make system` installs Debian's postgresql")
        pytest.skip("PostgreSQL is not installed (`make system` installs it)")
    server = PostgresServer(found)
    server.start()
    try:
        with pytest.MonkeyPatch.context() as env:
            env.setenv(STORE_DIR_ENV, str(tmp_path_factory.mktemp("postgres-store-files")))
            yield server
    finally:
        server.stop()


def _store_at(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, migrated: bool
) -> Iterator[str]:
    if request.param == "sqlite":
        yield str(tmp_path / "monitor.db")
        return
    from monitor.store.sql import STORE_DIR_ENV

    server: PostgresServer = request.getfixturevalue("postgres")
    monkeypatch.setenv(STORE_DIR_ENV, str(tmp_path))
    url = server.create_database(migrated=migrated)
    try:
        yield url
    finally:
        server.drop_database(url)


@pytest.fixture(params=ENGINES)
def store_at(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """Where the test's store is: a SQLite file in ``tmp_path``, then a new PostgreSQL database
    whose own files (audit key, checkpoints, data folder) are in ``tmp_path``. What ``--db`` takes."""
    yield from _store_at(request, tmp_path, monkeypatch, migrated=True)


@pytest.fixture(params=ENGINES)
def fresh_store_at(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """As ``store_at``, with no schema in the database yet (for tests of the migrations)."""
    yield from _store_at(request, tmp_path, monkeypatch, migrated=False)
