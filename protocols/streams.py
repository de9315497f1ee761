"""Reading a bounded body from an aiohttp stream, whole.

``StreamReader.read(n)`` returns what has arrived so far, not ``n`` bytes: a body larger than a
few network segments comes back cut, and a signature over it then fails (a catalog service's
answer of a hundred catalogs, an OCPI partner's page of locations, a registry's answer). Every
client and server here that bounds what it reads reads through this.
"""
from __future__ import annotations


async def read_body(stream, max_bytes: int) -> bytes:
    """The whole body, or its first ``max_bytes + 1`` bytes to say it is too large."""
    chunks, size = [], 0
    while size <= max_bytes:
        chunk = await stream.read(max_bytes + 1 - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)
