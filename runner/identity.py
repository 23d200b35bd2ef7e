"""The node's secp256k1 identity: wallet address, SIWE message and EIP-191 signatures.

DDS authenticates nodes by Sign-In with Ethereum; everything here is pure and byte-exact so that the
published test vector holds.
"""

from __future__ import annotations

from dataclasses import dataclass

import coincurve
from Crypto.Hash import keccak


def keccak256(data: bytes) -> bytes:
    return keccak.new(digest_bits=256, data=data).digest()


@dataclass(frozen=True)
class SiweChallenge:
    """What DDS answers to a nonce request; every field goes verbatim into the message."""

    nonce: str
    domain: str
    uri: str
    version: str
    chain_id: str
    issued_at: str


@dataclass(frozen=True, repr=False)
class NodeKey:
    """A secp256k1 private key; repr hides the secret so it never reaches a log."""

    secret: bytes

    @classmethod
    def from_hex(cls, text: str) -> NodeKey:
        digits = text.strip().removeprefix("0x").removeprefix("0X")
        try:
            secret = bytes.fromhex(digits)
        except ValueError as exc:
            raise ValueError("private key is not hexadecimal") from exc
        if len(secret) != 32:
            raise ValueError(f"private key must be 32 bytes, got {len(secret)}")
        coincurve.PrivateKey(secret)  # rejects zero and out-of-range keys
        return cls(secret)

    def __repr__(self) -> str:
        return f"NodeKey(address={self.address})"

    @property
    def address(self) -> str:
        """0x + lowercase hex of the last 20 bytes of keccak256(uncompressed public key sans 0x04)."""
        public = coincurve.PrivateKey(self.secret).public_key.format(compressed=False)[1:]
        return "0x" + keccak256(public)[-20:].hex()

    def personal_sign(self, message: str) -> str:
        """EIP-191 personal_sign: deterministic recoverable ECDSA, 0x + hex(r‖s‖v) with v = recid + 27."""
        signature = coincurve.PrivateKey(self.secret).sign_recoverable(
            personal_message_hash(message.encode()), hasher=None
        )
        return "0x" + signature[:64].hex() + bytes([signature[64] + 27]).hex()


def personal_message_hash(message: bytes) -> bytes:
    return keccak256(b"\x19Ethereum Signed Message:\n" + str(len(message)).encode() + message)


def siwe_message(challenge: SiweChallenge, address: str) -> str:
    return (
        f"{challenge.domain} wants you to sign in with your Ethereum account:\n{address}\n\n"
        f"URI: {challenge.uri}\nVersion: {challenge.version}\nChain ID: {challenge.chain_id}\n"
        f"Nonce: {challenge.nonce}\nIssued At: {challenge.issued_at}"
    )
