"""Beckn 2.0 LTS for the charger: the wire layer over the provider logic of ``protocols.beckn``.

The charger's contract logic (``protocols.beckn.bpp.Bpp``: admission, quotes, bookings,
payments, receipts) is written once. This package is a protocol profile over it: ``codec``
maps 2.0 messages (camelCase context, ``message.contract``, JSON-LD attribute packs) to the
records that logic reads and back, ``ack`` makes the counter-signed Ack and the 2.0 error
model, ``catalog`` renders the charger's signed catalog as a 2.0 ``Catalog``, ``profile``
plugs it into a ``Bpp``.
"""
