"""Two answers to the same request, made comparable, and the differences between them.

Each side hands out its own ids, timestamps and actor names, so before comparing each answer is
normalised by that side's ``Normaliser``: an id becomes a name given in order of first appearance
(``<budget 2>``; a profile the tour saved keeps its own name, ``{a}``), a timestamp becomes
``<date-time>`` (the two clocks differ, and so may their precision), an actor becomes
``<actor 1>``, JSON text (version snapshots, audit values) is parsed, and messages, which are for
people, become ``<text>``. Two sides that behave alike give equal normal forms.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# Keys whose value is the id of a profile, wherever they appear.
PROFILE_KEYS = frozenset({"access_profile_id", "parent_profile_id", "profile_id"})
# The kind of thing an "id" names, by the key of the object (or list) that holds it.
ID_KINDS = {
    "access_profile": "profile",
    "access_profiles": "profile",
    "snapshot": "profile",
    "previous_values": "profile",
    "new_values": "profile",
    "budgets": "budget",
    "budget": "budget",
    "rate_limit": "rate limit",
    "provider_configs": "provider config",
    "versions": "version row",
    "version": "version row",
    "audit_logs": "audit row",
    "roles": "role attachment",
}
ACTOR_KEYS = frozenset({"actor", "changed_by"})
JSON_TEXT_KEYS = frozenset({"snapshot", "previous_values", "new_values", "metadata"})
TEXT_KEYS = frozenset({"message"})
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
_MAX_DIFFERENCES = 20


class Normaliser:
    """One side's names for what it handed out: ids, actors, the run's prefix.

    Ids inside a profile (its budgets, provider configs, rate limits, and the rows of its history)
    are numbered per profile, so that other data seen on one side only (a list that ignored its
    filter, say) does not shift the numbers of the run's own profiles.
    """

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self._names: dict[tuple[str, str, Any], str] = {}
        self._counts: dict[tuple[str, str], int] = {}

    def name_profile(self, profile_id: Any, name: str) -> None:
        """From now on, this side's profile ``profile_id`` is written ``{name}``."""
        self._names[("", "profile", _key(profile_id))] = "{" + name + "}"

    def symbol(self, kind: str, value: Any, scope: str = "") -> str:
        """The name of ``value`` among this side's values of ``kind`` (in ``scope``), in order of first appearance."""
        key = (scope, kind, _key(value))
        if key not in self._names:
            count = self._counts.get((scope, kind), 0) + 1
            self._counts[(scope, kind)] = count
            self._names[key] = f"<{kind} {count}>"
        return self._names[key]

    def answer(self, status: int, body: Any, headers: Mapping[str, str], compared: tuple[str, ...] = ()) -> Any:
        """The normal form of an answer: its status, the compared headers, and the body.

        An error is compared by its status, ``error.type`` and ``error.param`` only.
        """
        form: dict[str, Any] = {"status": status}
        for name in compared:
            value = next((v for k, v in headers.items() if k.lower() == name.lower()), None)
            if value is not None:
                form[name] = self._header(name, value)
        if status >= 400:
            error = body.get("error") if isinstance(body, dict) else None
            if isinstance(error, dict):
                form["error"] = {k: self.value(error[k]) for k in ("type", "param") if k in error}
            else:
                form["error"] = "<not a BifrostError envelope>"
        elif body is not None:
            form["body"] = self.value(body)
        return form

    def value(self, value: Any, context: str = "", scope: str = "") -> Any:
        """The normal form of a JSON value found under the key ``context``, inside the profile ``scope``."""
        if isinstance(value, dict):
            return self._object(value, context, scope)
        if isinstance(value, list):
            return [self.value(item, context, scope) for item in value]
        if isinstance(value, str):
            return value.replace(self.prefix, "<run>-") if self.prefix else value
        return value

    def _object(self, data: dict[str, Any], context: str, scope: str) -> dict[str, Any]:
        kind = ID_KINDS.get(context, context or "object")
        if kind == "profile" and _is_id(data.get("id")):
            scope = self.symbol("profile", data["id"])
        elif _is_id(data.get("access_profile_id")):
            scope = self.symbol("profile", data["access_profile_id"])
        out: dict[str, Any] = {}
        for key in sorted(data):
            value = data[key]
            if key == "id" and _is_id(value):
                out[key] = self.symbol("profile", value) if kind == "profile" else self.symbol(kind, value, scope)
            elif key in PROFILE_KEYS and _is_id(value):
                out[key] = self.symbol("profile", value)
            elif key in ACTOR_KEYS and isinstance(value, str):
                out[key] = self.symbol("actor", value)
            elif key in TEXT_KEYS and isinstance(value, str):
                out[key] = "<text>"
            elif key in JSON_TEXT_KEYS and isinstance(value, str) and _json_text(value) is not None:
                out[key] = {"<json text>": self.value(_json_text(value), key, scope)}
            elif _is_time_key(key) and isinstance(value, str):
                out[key] = "<date-time>" if _RFC3339.match(value) else f"<not a date-time: {value}>"
            else:
                out[key] = self.value(value, key, scope)
        return out

    def _header(self, name: str, value: str) -> str:
        if name.lower() != "location":
            return value
        path = re.sub(r"^[a-z]+://[^/]+", "", value)
        head, _, last = path.rpartition("/")
        return f"{head}/{self.symbol('profile', last)}" if last.isdigit() else path


def _is_id(value: Any) -> bool:
    return isinstance(value, (int, str)) and not isinstance(value, bool)


def _key(value: Any) -> Any:
    # A profile id arrives as an int in bodies and as text in paths and headers.
    return int(value) if isinstance(value, str) and value.isdigit() else value


def _is_time_key(key: str) -> bool:
    return key.endswith("_at") or key == "last_reset"


def _json_text(value: str) -> Any:
    try:
        data = json.loads(value)
    except (ValueError, RecursionError):
        return None
    return data if isinstance(data, (dict, list)) else None


def shape(value: Any) -> Any:
    """Which fields are present, without the values; a list by its first item."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    return "<value>"


@dataclass(frozen=True)
class Difference:
    """One place where the two normal forms disagree: ``where`` in the answer, and each side's value."""

    where: str
    mock: str
    deployment: str


def differences(mock: Any, deployment: Any) -> list[Difference]:
    """Where two normal forms differ: a field present on one side only, a value, a list's length."""
    found: list[Difference] = []
    _walk(mock, deployment, "", found)
    if len(found) > _MAX_DIFFERENCES:
        more = len(found) - _MAX_DIFFERENCES
        found = [*found[:_MAX_DIFFERENCES], Difference("...", f"and {more} more", f"and {more} more")]
    return found


def _walk(mock: Any, deployment: Any, where: str, found: list[Difference]) -> None:
    if isinstance(mock, dict) and isinstance(deployment, dict):
        for key in sorted(set(mock) | set(deployment)):
            inner = f"{where}.{key}" if where else key
            if key not in deployment:
                found.append(Difference(inner, brief(mock[key]), "absent"))
            elif key not in mock:
                found.append(Difference(inner, "absent", brief(deployment[key])))
            else:
                _walk(mock[key], deployment[key], inner, found)
    elif isinstance(mock, list) and isinstance(deployment, list):
        if len(mock) != len(deployment):
            found.append(Difference(where, _items(len(mock)), _items(len(deployment))))
        for index, (left, right) in enumerate(zip(mock, deployment, strict=False)):
            _walk(left, right, f"{where}[{index}]", found)
    elif not _same(mock, deployment):
        found.append(Difference(where, brief(mock), brief(deployment)))


def _same(left: Any, right: Any) -> bool:
    # JSON has one number type: 10 and 10.0 are the same value, but true is not 1.
    if isinstance(left, bool) or isinstance(right, bool):
        return type(left) is type(right) and left == right
    if isinstance(left, (int, float)) and isinstance(right, (int, float)):
        return left == right
    return type(left) is type(right) and bool(left == right)


def _items(count: int) -> str:
    return f"{count} item{'s' if count != 1 else ''}"


def brief(value: Any, width: int = 80) -> str:
    """A value in one line of at most ``width`` characters."""
    text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= width else text[: width - 3] + "..."


def lines(form: Any) -> list[str]:
    """A normal form as the lines shown side by side: the status, then the rest as indented JSON."""
    if not isinstance(form, dict):
        return json.dumps(form, indent=2, ensure_ascii=False).splitlines()
    head = [f"HTTP {form.get('status')}"]
    head += [f"{key}: {value}" for key, value in form.items() if key not in ("status", "body", "error")]
    rest = {key: form[key] for key in ("error", "body") if key in form}
    if not rest:
        return head
    inner = rest["body"] if set(rest) == {"body"} else rest
    return head + json.dumps(inner, indent=2, ensure_ascii=False, sort_keys=True).splitlines()


def side_by_side(left: list[str], right: list[str], width: int = 56, context: int = 3) -> list[str]:
    """Two texts in columns, lines aligned, ``|`` where they differ, ``<``/``>`` where one side has a line
    the other lacks; runs of equal lines longer than ``2 * context`` are cut to their ends."""
    rows: list[tuple[str, str, str]] = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, left, right, autojunk=False).get_opcodes():
        if tag == "equal":
            span = list(zip(left[i1:i2], right[j1:j2], strict=True))
            if len(span) > 2 * context + 1:
                skipped = len(span) - 2 * context
                span = [*span[:context], (f"... {skipped} equal lines", f"... {skipped} equal lines"), *span[-context:]]
            rows += [(a, " ", b) for a, b in span]
            continue
        olds, news = left[i1:i2], right[j1:j2]
        for index in range(max(len(olds), len(news))):
            a = olds[index] if index < len(olds) else ""
            b = news[index] if index < len(news) else ""
            mark = "|" if a and b else ("<" if a else ">")
            rows.append((a, mark, b))
    return [f"{_cell(a, width)} {mark} {_cell(b, width)}".rstrip() for a, mark, b in rows]


def _cell(text: str, width: int) -> str:
    return text.ljust(width) if len(text) <= width else text[: width - 3] + "..."
