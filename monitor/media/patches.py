"""Every change this program makes to aiortc's and aioice's private parts, in one place.

aiortc and aioice have no public hook for what the relay needs (host candidates on loopback, the
encoded frames a receiver reassembles, its jitter buffer), so the relay reaches into private
attributes. Each such patch lives here, behind :func:`check_versions`: the versions they were
written and tested against are pinned in ``pyproject.toml``, and a different version refuses to
start with one clear line instead of misbehaving quietly.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from importlib import metadata

#: The versions every patch here was written and tested against (pinned in pyproject.toml).
TESTED = {"aiortc": "1.16.0", "aioice": "0.13.0"}


class UnsupportedVersion(RuntimeError):
    """An installed aiortc or aioice is not the version these patches were tested against."""


def check_versions() -> None:
    """Refuse to patch a version the patches were not tested against (see the module's theory)."""
    for package, tested in TESTED.items():
        installed = metadata.version(package)
        if installed != tested:
            raise UnsupportedVersion(
                f"{package} {installed} is installed; this program patches {package} {tested} only "
                f"(monitor/media/patches.py): install {package}=={tested}"
            )


def set_ice_host_addresses(addresses: list[str]) -> None:
    """Make aioice offer exactly these host candidates (it never offers 127.0.0.1 by itself)."""
    import aioice.ice

    check_versions()
    chosen = list(addresses)

    def get_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return [a for a in chosen if (":" in a and use_ipv6) or (":" not in a and use_ipv4)]

    aioice.ice.get_host_addresses = get_host_addresses


@contextlib.contextmanager
def ice_host_addresses(addresses: list[str]) -> Iterator[None]:
    """:func:`set_ice_host_addresses` for the ``with`` block; aioice's previous choice comes back on
    exit (for tests and benchmarks that share a process with other code)."""
    import aioice.ice

    previous = aioice.ice.get_host_addresses
    set_ice_host_addresses(addresses)
    try:
        yield
    finally:
        aioice.ice.get_host_addresses = previous
