"""Credentials to caller identity, and the permission check (401 / 403)."""

from __future__ import annotations

import base64
import binascii
import hmac
from dataclasses import dataclass, field

from mockserver.spec.errors import CHALLENGE, Forbidden, Unauthorized

VIRTUAL_KEY_PREFIX = "sk-bf-"
_SCHEMES = ("bearer", "basic")


@dataclass(frozen=True)
class Identity:
    """Who is calling. ``permissions`` is None for an admin, who bypasses RBAC.

    ``user_id`` is the user a credential stands for (a user's session); None for an admin login
    or a management key, which have no per-user identity.
    """

    name: str
    permissions: frozenset[str] | None = None
    user_id: str | None = None


@dataclass(frozen=True)
class ApiKey:
    name: str
    key: str
    scopes: frozenset[str]
    user_id: str | None = None


@dataclass(frozen=True)
class KeyRing:
    """The credentials a strict mock accepts: admin logins and scoped management keys."""

    admins: dict[str, str] = field(default_factory=dict)
    keys: dict[str, ApiKey] = field(default_factory=dict)


class Authenticator:
    """Permissive without a key ring (any credential is an admin); strict with one."""

    # Identities of the headers seen last: a client sends the same header on every request.
    KNOWN = 1024

    def __init__(self, keyring: KeyRing | None = None) -> None:
        self.keyring = keyring
        self._known: dict[str, Identity] = {}

    def identify(self, authorization: str | None, schemes: tuple[str, ...] = ()) -> Identity:
        """The caller behind an ``Authorization`` header, or ``Unauthorized``.

        ``schemes``: the schemes the operation accepts (``bearer``, ``basic``); empty for any.
        """
        if schemes and authorization:
            scheme = authorization.strip().partition(" ")[0].lower()
            if scheme in _SCHEMES and scheme not in schemes:
                accepted = " or ".join(s.capitalize() for s in schemes)
                raise _unauthorized(f"this operation accepts only {accepted} credentials, not {scheme.capitalize()}")
        known = self._known.get(authorization) if authorization else None
        if known is not None:
            return known
        identity = self._identify(authorization)
        if len(self._known) >= self.KNOWN:
            self._known.clear()
        self._known[authorization or ""] = identity
        return identity

    def _identify(self, authorization: str | None) -> Identity:
        scheme, _, credential = (authorization or "").strip().partition(" ")
        credential = credential.strip()
        scheme = scheme.lower()
        if not scheme:
            raise _unauthorized("authentication required: send Authorization: Bearer <token> or Basic credentials")
        if scheme not in ("bearer", "basic") or not credential:
            # A header with nothing after its first word may be a bare secret: only a scheme is named.
            named = f" {scheme!r}" if credential else ""
            raise _unauthorized(f"unsupported Authorization header{named}: send Bearer <token> or Basic credentials")
        if scheme == "basic":
            user, password = _basic(credential)
            return self._login(user, password)
        if credential.startswith(VIRTUAL_KEY_PREFIX):
            raise _unauthorized("virtual keys (sk-bf-...) are not accepted on management APIs; use a management key")
        return self._token(credential)

    @staticmethod
    def authorize(identity: Identity, permission: str) -> None:
        """``Forbidden`` unless the identity holds the permission."""
        if identity.permissions is None or permission in identity.permissions:
            return
        held = ", ".join(sorted(identity.permissions)) or "no permissions"
        raise Forbidden(f"permission {permission} is required; {identity.name!r} has {held}")

    def _login(self, user: str, password: str) -> Identity:
        if self.keyring is None:
            return Identity(user)
        expected = self.keyring.admins.get(user)
        if expected is None or not hmac.compare_digest(expected.encode(), password.encode()):
            raise _unauthorized("unknown username or wrong password")
        return Identity(user)

    def _token(self, token: str) -> Identity:
        legacy = _legacy_admin_token(token)
        if self.keyring is None:
            return Identity(legacy[0] if legacy else f"token ...{token[-4:]}")
        key = self.keyring.keys.get(token)
        if key is not None:
            return Identity(key.name, key.scopes, key.user_id)
        if legacy is not None:
            return self._login(*legacy)
        raise _unauthorized("unknown token: not a management key of this server")


def _unauthorized(message: str) -> Unauthorized:
    return Unauthorized(message, headers=dict(CHALLENGE))


def _basic(credential: str) -> tuple[str, str]:
    try:
        text = base64.b64decode(credential, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise _unauthorized("Basic credentials are not base64 of username:password") from None
    user, sep, password = text.partition(":")
    if not sep or not user:
        raise _unauthorized("Basic credentials are not base64 of username:password with a username")
    return user, password


def _legacy_admin_token(token: str) -> tuple[str, str] | None:
    """A bearer token that is base64 of ``username:password`` (an older admin login form)."""
    try:
        return _basic(token)
    except Unauthorized:
        return None
