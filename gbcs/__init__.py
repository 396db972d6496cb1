"""gbcs: the sans-IO GBCS protocol core (frames, payloads, security, catalogue, OTA image, UTRN).

Every error it raises on purpose is a `GbcsError` (a ValueError): `DecodeError` for malformed
input (`gbcs.utrn.UtrnError` is one), `EncodeError` for values that cannot be encoded,
`SecurityError` for failed MAC/signature/decryption checks, `KeystoreError` for keys."""
from .codec import DecodeError, EncodeError, GbcsError, KeystoreError, SecurityError

__all__ = ["DecodeError", "EncodeError", "GbcsError", "KeystoreError", "SecurityError"]
