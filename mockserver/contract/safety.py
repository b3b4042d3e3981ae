"""What a contract run may change on a real deployment: only the profiles it created itself.

Two layers use these rules. Before each request, a Schemathesis hook points changes at the run's
own profiles and marks the names it sends (``hooks``). Just before anything leaves the
process, ``Guard`` refuses whatever the hook missed (``http`` installs it).
"""

from __future__ import annotations

import json
import re
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

# RFC 9110 section 9.2.1: methods that do not change anything on the server.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
NAME_PREFIX = "mockserver-contract-"
# Stands in for a generated path value that is not a valid id: still invalid, but no server can read
# a profile id out of it, because it has no digit.
NOT_AN_ID = "not-a-profile-id"


def profile_collection(path: str) -> str | None:
    """The collection of a path template that addresses one profile by ``{profile_id}``, or None.

    Only collections without parameters count: under ``/users/{user_id}/...``, ``profile_id`` names
    a user's copy, which a run never owns.
    """
    head, marker, _ = path.partition("/{profile_id}")
    return head if marker and "{" not in head else None


def is_numeric_free(text: str) -> bool:
    """True when no character of ``text`` could be read as a digit (ASCII or not)."""
    return not any(ch.isnumeric() for ch in text)


def is_integer_text(text: str) -> bool:
    """Whether ``text`` is an integer written plainly (ASCII digits, optional minus, no leading zero)."""
    return re.fullmatch(r"-?(0|[1-9][0-9]*)", text) is not None


def as_profile_id(text: str) -> int | None:
    """The id that ``text`` spells in canonical decimal (no sign, no leading zero), else None."""
    if text.isascii() and text.isdigit() and (text == "0" or not text.startswith("0")):
        return int(text)
    return None


def profile_id_of(value: Any) -> int | None:
    """The profile id a generated path value names (Schemathesis gives them as int or str)."""
    return None if isinstance(value, bool) else as_profile_id(str(value))


class Ownership:
    """The profiles one run created, and the name prefix that marks them."""

    def __init__(self, *, max_name_length: int, token: str | None = None, namespace: str = NAME_PREFIX) -> None:
        # max_name_length: the spec's maxLength of a created profile's name; namespace: which command's run
        self.prefix = f"{namespace}{token or secrets.token_hex(4)}-"
        self.max_name_length = max_name_length
        self._lock = threading.Lock()
        self._created: dict[int, None] = {}  # insertion-ordered set
        self._deleted: set[int] = set()

    def adopt(self, profile_id: int) -> None:
        """Record a profile this run created."""
        with self._lock:
            self._created[profile_id] = None
            self._deleted.discard(profile_id)

    def release(self, profile_id: int) -> None:
        """Record that a profile of this run was deleted."""
        with self._lock:
            if profile_id in self._created:
                self._deleted.add(profile_id)

    def owns(self, profile_id: int) -> bool:
        """Created by this run (deleted since or not)."""
        with self._lock:
            return profile_id in self._created

    def is_live(self, profile_id: int) -> bool:
        """Created by this run and not known to be deleted."""
        with self._lock:
            return profile_id in self._created and profile_id not in self._deleted

    def live(self) -> list[int]:
        with self._lock:
            return [i for i in self._created if i not in self._deleted]

    def created(self) -> list[int]:
        with self._lock:
            return list(self._created)

    def forget(self) -> None:
        """Drop everything (the in-process mock was reset, so the ids mean nothing any more)."""
        with self._lock:
            self._created.clear()
            self._deleted.clear()

    def marks(self, name: Any) -> bool:
        """Whether ``name`` carries this run's prefix."""
        return isinstance(name, str) and name.startswith(self.prefix)

    def name(self, name: Any) -> Any:
        """``name`` with this run's prefix, valid exactly when ``name`` was.

        A blank or non-string name is returned as it is: it is invalid, and a prefix would make it
        valid. A name too long to take the prefix keeps its length, so an over-long name stays over.
        """
        if not isinstance(name, str) or not name.strip() or self.marks(name):
            return name
        marked = self.prefix + name
        if len(marked) <= self.max_name_length:
            return marked
        return self.prefix + name[len(self.prefix) :]

    def retarget(self, value: Any, anchor: Callable[[], int]) -> Any:
        """The ``profile_id`` a changing request may use instead of ``value``.

        ``value`` itself when ``may_change`` allows it. A generated integer becomes ``anchor()``, one
        of the run's own profiles, in the type it came in. Anything else was meant to be invalid and
        becomes ``NOT_AN_ID``, which is just as invalid but names no profile.
        """
        if self.may_change(value):
            return value
        if isinstance(value, bool) or not is_integer_text(str(value)):
            return NOT_AN_ID
        return anchor() if isinstance(value, int) else str(anchor())

    def may_change(self, value: Any) -> bool:
        """Whether a request that changes things may go to a profile path with this ``profile_id``.

        Yes for a live profile of this run, and for a value in which no server could find an id.
        """
        text = str(value)
        profile_id = as_profile_id(text)
        if profile_id is not None:
            return self.is_live(profile_id)
        return is_numeric_free(text)


@dataclass(frozen=True)
class Guard:
    """The last check on every request a run sends: may it go out?

    ``collections`` are the profile collection paths of the spec (``/api/governance/access-profiles``
    and its deprecated twin); every profile path lies below one of them.
    """

    ownership: Ownership
    base_url: str
    collections: tuple[str, ...]
    read_only: bool = False

    def refusal(self, method: str, url: str, body: object) -> str | None:
        """Why this request must not be sent, or None when it may."""
        method = method.upper()
        if method in SAFE_METHODS:
            return None
        where = f"{method} {url}"
        if self.read_only:
            return f"{where}: a read-only run sends only {', '.join(sorted(SAFE_METHODS))}"
        path = self._relative_path(url)
        if path is None:
            return f"{where}: outside the deployment under test ({self.base_url})"
        data = json_object(body) or {}
        name = data.get("name")
        if isinstance(name, str) and name.strip() and not self.ownership.marks(name):
            return f"{where}: the name {name!r} lacks this run's prefix {self.ownership.prefix!r}"
        if path.endswith("/roles") and any(data.get(flag) is True for flag in REACHING_FLAGS):
            return f"{where}: attaching with {' or '.join(REACHING_FLAGS)} would change other profiles or users"
        user_keys = _USER_KEYS.fullmatch(path)
        if user_keys is not None:
            # Minting a key changes a real user; a user id with the run's prefix is one no real user
            # has, so the deployment can only refuse it (it holds no profile).
            user_id = unquote(user_keys.group(1))
            if method != "POST":
                return f"{where}: the run only mints keys (POST), for users it made up"
            if self.ownership.marks(user_id):
                return None
            return f"{where}: user {user_id!r} is not one of this run's made-up users"
        for collection in self.collections:
            if path in (collection, collection + "/"):
                if method == "POST":
                    return None
                return f"{where}: the run never sends {method} to the profile collection"
            if path.startswith(collection + "/"):
                segment = unquote(path[len(collection) + 1 :].split("/", 1)[0])
                profile_id = as_profile_id(segment)
                if profile_id is not None and self.ownership.owns(profile_id):
                    return None
                if profile_id is None and is_numeric_free(segment):
                    return None
                return f"{where}: profile {segment!r} was not created by this run"
        return f"{where}: not a profile path this run may change"

    def _relative_path(self, url: str) -> str | None:
        """The path of ``url`` below the base URL, or None for another host or a path outside it."""
        base, target = urlsplit(self.base_url), urlsplit(url)
        if (base.scheme, base.netloc) != (target.scheme, target.netloc):
            return None
        root = base.path.rstrip("/")
        if root and not (target.path == root or target.path.startswith(root + "/")):
            return None
        return target.path[len(root) :] or "/"


# A user's keys (addUserVirtualKey), in either family: ``<api root>/users/{user_id}/virtual-keys``.
_USER_KEYS = re.compile(r"/(?:[^/]+/)*users/([^/]+)/virtual-keys/?")

# Attach-roles flags that reach beyond the run's own profile (a role's default is shared with other
# profiles; apply_to_existing gives real users copies and keys).
REACHING_FLAGS = ("is_default", "apply_to_existing")


def json_object(body: object) -> dict[str, Any] | None:
    """A body or text that holds a JSON object, or None (empty, not JSON, not UTF-8, nested too deep)."""
    if not body or not isinstance(body, (bytes, str)):
        return None
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return None
    return data if isinstance(data, dict) else None
