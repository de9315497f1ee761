"""Signing benchmark: full Beckn message sign/verify against raw Ed25519 in the same run.

Method: for each body size (1 KiB, 8 KiB) time ``sign_body`` (digest + signing string + Ed25519
+ header) and ``Verifier.verify`` (strict header parse + key lookup + digest + Ed25519) over
batches, and raw ``cryptography`` Ed25519 sign/verify of a signing-string-sized message in
interleaved batches, so both sides see the same machine load. Rates are medians over rounds;
ratios are full-message rate / raw rate. Also reports the bytes the signature header adds.
"""
from __future__ import annotations

import asyncio
import json
import os
import platform
import statistics
import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ed25519

from protocols.signing.beckn import Verifier, sign_body, signing_string
from protocols.signing.keys import Ed25519Signer, PublicKeyRecord, StaticKeyLookup

ROUNDS = 7
BATCH = 300
NOW_S = 1_800_000_000


def _rate(fn, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return n / (time.perf_counter() - start)


async def _async_rate(fn, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        await fn()
    return n / (time.perf_counter() - start)


def _body(size: int) -> bytes:
    filler = "x" * max(0, size - 64)
    body = json.dumps({"context": {"action": "on_search", "message_id": "m-1"}, "message": {"f": filler}},
                      separators=(",", ":")).encode()
    return body[:size] if len(body) > size else body


async def _measure() -> dict:
    key = ed25519.Ed25519PrivateKey.from_private_bytes(os.urandom(32))
    signer = Ed25519Signer(subscriber_id="charger-1.example.in", key_id="0e12a4ea-72d0-486f-8a84-ab09659e5608",
                           private_key=key)
    record = PublicKeyRecord(signer.subscriber_id, signer.key_id, signer.public_key_bytes, NOW_S - 10, NOW_S + 10**6)
    verifier = Verifier(lookup=StaticKeyLookup([record]), clock=lambda: NOW_S)
    public = key.public_key()
    raw_msg = signing_string(NOW_S, NOW_S + 30, "A" * 88).encode()
    raw_sig = key.sign(raw_msg)
    results: dict = {}
    for size in (1024, 8192):
        body = _body(size)
        header = sign_body(body, signer, created_s=NOW_S, expires_s=NOW_S + 30)
        rounds = {"raw_sign": [], "raw_verify": [], "sign": [], "verify": []}
        for _ in range(ROUNDS):
            rounds["raw_sign"].append(_rate(lambda: key.sign(raw_msg), BATCH))
            rounds["sign"].append(_rate(lambda body=body: sign_body(body, signer, created_s=NOW_S, expires_s=NOW_S + 30), BATCH))
            rounds["raw_verify"].append(_rate(lambda: public.verify(raw_sig, raw_msg), BATCH))
            rounds["verify"].append(await _async_rate(lambda header=header, body=body: verifier.verify(header, body), BATCH))
        med = {k: statistics.median(v) for k, v in rounds.items()}
        results[f"{size}B"] = {
            "sign_per_s": round(med["sign"]),
            "verify_per_s": round(med["verify"]),
            "raw_sign_per_s": round(med["raw_sign"]),
            "raw_verify_per_s": round(med["raw_verify"]),
            "sign_ratio": round(med["sign"] / med["raw_sign"], 3),
            "verify_ratio": round(med["verify"] / med["raw_verify"], 3),
            "header_bytes": len("Authorization: ") + len(header) + 2,
            "header_value_bytes": len(header),
        }
    return results


def main(out_dir: Path) -> dict:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    sizes = asyncio.run(_measure())
    result = {
        "area": "signing",
        "results": sizes,
        "targets": {"sign_ratio_min": 0.5, "verify_ratio_min": 0.6},
        "targets_met": all(r["sign_ratio"] >= 0.5 and r["verify_ratio"] >= 0.6 for r in sizes.values()),
        "machine": {"python": platform.python_version(), "machine": platform.machine(),
                    "processor": platform.processor(), "cpus": os.cpu_count()},
        "method": __doc__.strip().split("\n\n", 1)[1].replace("\n", " "),
        "rounds": ROUNDS,
        "batch": BATCH,
    }
    (out_dir / "signing.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    import sys

    print(json.dumps(main(Path(sys.argv[1] if len(sys.argv) > 1 else "bench/results")), indent=2))
