"""DDS identity: SIWE registration (kept fresh in the background) and login for the DMS bearer token."""

from __future__ import annotations

import logging
import random
import threading
import time
from dataclasses import dataclass
from enum import Enum

import httpx

from .identity import NodeKey, SiweChallenge, siwe_message
from .retry import Backoff, RetriesExhausted, TransientError, is_retryable, is_retryable_status, with_retries
from .timestamps import parse_rfc3339

log = logging.getLogger(__name__)

REFRESH_FRACTION = (0.70, 0.75)
"""Log in again after this share of the token lifetime; the spread keeps a fleet from logging in together."""


class AuthError(RuntimeError):
    """DDS did not give the node a token."""


@dataclass(frozen=True)
class AccessGrant:
    token: str
    expires_at: float


@dataclass(frozen=True)
class SignedChallenge:
    message: str
    signature: str


class RegistrationResult(Enum):
    REGISTERED = "registered"
    HELD_ELSEWHERE = "held by another online node"
    RETRYABLE = "temporarily failed"
    REJECTED = "rejected"


class DdsClient:
    """The three DDS calls a node makes, each one HTTP request without retries of its own."""

    def __init__(self, http: httpx.Client, base_url: str, key: NodeKey):
        self._http = http
        self._base_url = base_url
        self._key = key

    @property
    def address(self) -> str:
        return self._key.address

    def sign_in_challenge(self) -> SignedChallenge:
        reply = self._http.post(
            f"{self._base_url}/internal/v1/auth/siwe/request", json={"wallet": self._key.address}
        )
        reply.raise_for_status()
        body = reply.json()
        if not body.get("nonce"):
            raise TransientError("DDS answered an empty SIWE nonce")
        challenge = SiweChallenge(
            nonce=str(body["nonce"]),
            domain=str(body["domain"]),
            uri=str(body["uri"]),
            version=str(body["version"]),
            chain_id=str(body["chainId"]),
            issued_at=str(body["issuedAt"]),
        )
        message = siwe_message(challenge, self._key.address)
        return SignedChallenge(message=message, signature=self._key.personal_sign(message))

    def register(self, secret: str, capabilities: list[str], version: str) -> RegistrationResult:
        signed = self.sign_in_challenge()
        reply = self._http.post(
            f"{self._base_url}/internal/v1/nodes/register-wallet",
            json={
                "message": signed.message,
                "signature": signed.signature,
                "registration_credentials": secret,
                "capabilities": capabilities,
                "version": version.removeprefix("v"),
            },
        )
        if reply.is_success:
            return RegistrationResult.REGISTERED
        if reply.status_code == 409:
            return RegistrationResult.HELD_ELSEWHERE
        if is_retryable_status(reply.status_code):
            return RegistrationResult.RETRYABLE
        log.error("registration rejected: HTTP %s %s", reply.status_code, reply.text[:300])
        return RegistrationResult.REJECTED

    def login(self) -> AccessGrant:
        signed = self.sign_in_challenge()
        reply = self._http.post(
            f"{self._base_url}/internal/v1/auth/siwe/verify",
            json={"address": self._key.address, "message": signed.message, "signature": signed.signature},
        )
        reply.raise_for_status()
        body = reply.json()
        expires = body.get("access_expires_at") or body.get("expires_at")
        if not body.get("access_token") or not expires:
            raise AuthError("login reply lacks access_token or its expiry")
        return AccessGrant(token=str(body["access_token"]), expires_at=parse_rfc3339(str(expires)))


class TokenKeeper:
    """Hands out the DMS bearer token, logging in again at ~75 % of its lifetime or when told it failed."""

    def __init__(self, dds: DdsClient, backoff: Backoff):
        self._dds = dds
        self._backoff = backoff
        self._lock = threading.Lock()
        self._token: str | None = None
        self._refresh_at = 0.0

    def token(self) -> str:
        with self._lock:
            if self._token is None or time.time() >= self._refresh_at:
                self._token, self._refresh_at = self._login()
            return self._token

    def invalidate(self, token: str) -> None:
        """The caller saw token rejected; the next token() logs in unless someone already did."""
        with self._lock:
            if self._token == token:
                self._token = None

    def _login(self) -> tuple[str, float]:
        """The new token and when to replace it."""
        try:
            grant = with_retries(self._dds.login, what="DDS login", backoff=self._backoff, pause=time.sleep)
        except (httpx.HTTPError, RetriesExhausted, ValueError, KeyError) as exc:
            raise AuthError(f"DDS login failed: {exc}") from exc
        now = time.time()
        lifetime = max(0.0, grant.expires_at - now)
        log.info("logged in to DDS; token valid for %.0f s", lifetime)
        return grant.token, now + lifetime * random.uniform(*REFRESH_FRACTION)


class Registrar:
    """Registers the wallet now and every interval; 409 and transient failures retry with backoff."""

    def __init__(
        self,
        dds: DdsClient,
        secret: str,
        capabilities: list[str],
        version: str,
        interval_secs: float,
        backoff: Backoff,
    ):
        self._dds = dds
        self._secret = secret
        self._capabilities = capabilities
        self._version = version
        self._interval_secs = interval_secs
        self._backoff = backoff
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="registrar", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_secs: float) -> None:
        """Stop re-registering; an HTTP call in flight may outlast timeout_secs (the thread is a daemon)."""
        self._stop.set()
        self._thread.join(timeout_secs)

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            result = self._attempt()
            if result in (RegistrationResult.REGISTERED, RegistrationResult.REJECTED):
                failures = 0
                self._stop.wait(self._interval_secs)
                continue
            failures += 1
            if result is RegistrationResult.HELD_ELSEWHERE:
                log.warning("registration refused: another online node holds this wallet; retrying")
            self._stop.wait(self._backoff.delay(failures))

    def _attempt(self) -> RegistrationResult:
        try:
            result = self._dds.register(self._secret, self._capabilities, self._version)
        except Exception as exc:
            if not is_retryable(exc):
                log.exception("registration failed")
                return RegistrationResult.REJECTED
            log.warning("registration failed, will retry: %s", exc)
            return RegistrationResult.RETRYABLE
        if result is RegistrationResult.REGISTERED:
            log.info("registered with DDS as %s", self._dds.address)
        return result
