"""monitor/media/patches.py on the installed aiortc and aioice: the host-candidate patch offers
exactly the chosen addresses (by family) and the context manager gives aioice its previous choice
back, also when the block fails."""

from __future__ import annotations

import aioice.ice
import pytest

from monitor.media import patches


def test_the_installed_versions_are_the_tested_ones() -> None:
    patches.check_versions()  # pyproject pins the versions the patches were written against


def test_ice_host_addresses_offers_the_chosen_addresses_by_family_and_restores_on_exit() -> None:
    before = aioice.ice.get_host_addresses
    with patches.ice_host_addresses(["127.0.0.1", "::1"]):
        assert aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=False) == ["127.0.0.1"]
        assert aioice.ice.get_host_addresses(use_ipv4=False, use_ipv6=True) == ["::1"]
        assert aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=True) == ["127.0.0.1", "::1"]
    assert aioice.ice.get_host_addresses is before


def test_ice_host_addresses_restores_when_the_block_raises() -> None:
    before = aioice.ice.get_host_addresses
    with pytest.raises(RuntimeError), patches.ice_host_addresses(["127.0.0.1"]):
        assert aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=True) == ["127.0.0.1"]
        raise RuntimeError("the test failed inside the block")
    assert aioice.ice.get_host_addresses is before
