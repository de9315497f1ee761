"""The page is found on the LAN by name: the charger's mDNS advert, resolved by another zeroconf."""
from __future__ import annotations

from zeroconf.asyncio import AsyncZeroconf

from protocols.owner.binding import default_mdns_name
from protocols.owner.mdns import SERVICE_TYPE, Advert


async def test_the_page_is_advertised_by_name_and_gone_after_close():
    advert = Advert(name="urja-test-kirana", port=8123, addresses=["127.0.0.1"], interfaces=["127.0.0.1"])
    await advert.start()
    phone = AsyncZeroconf(interfaces=["127.0.0.1"])
    try:
        info = await phone.async_get_service_info(SERVICE_TYPE, f"urja-test-kirana.{SERVICE_TYPE}", timeout=3000)
        assert info is not None and info.server == "urja-test-kirana.local." and info.port == 8123
        assert info.parsed_addresses() == ["127.0.0.1"] and info.properties[b"path"] == b"/"
    finally:
        await advert.close()
        await phone.async_close()
    assert advert.host == "urja-test-kirana.local"


def test_the_default_name_is_a_valid_host_name_from_the_site_id():
    assert default_mdns_name("in.blr.Koramangala_1") == "urja-in-blr-koramangala-1"
    assert len(default_mdns_name("x" * 200)) <= 63
