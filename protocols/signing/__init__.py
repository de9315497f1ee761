"""Trust without a back-end: the charger's keys, Beckn message signatures, agency certificates,
signed offers and receipts, and OCMF meter data.

Import the submodules directly (``protocols.signing.beckn`` ...); this package module stays
empty so that importing one part never loads the others.
"""
