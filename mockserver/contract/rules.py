"""The access-profile rules the contract checks add to Schemathesis, over plain JSON values.

Each function returns what is wrong (empty or None when nothing is). The checks in
``checks`` decide when a rule applies; these functions only compare values.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeGuard

from mockserver.spec.document import PageSize, Spec

# Set by the server on every change; an update may move them whatever it sends.
SERVER_STAMPED = ("version", "updated_at")
_MISSING = object()


@dataclass(frozen=True)
class UpdateLimits:
    """How many items an update accepts (create has no limits), read from the spec."""

    tags: int
    budgets: int
    provider_configs: int
    provider_budgets: int

    @classmethod
    def from_spec(cls, spec: Spec) -> UpdateLimits:
        return cls(
            tags=spec.limit("UpdateAccessProfileRequest", "tags", "maxItems"),
            budgets=spec.limit("UpdateAccessProfileRequest", "budgets", "maxItems"),
            provider_configs=spec.limit("UpdateAccessProfileRequest", "provider_configs", "maxItems"),
            provider_budgets=spec.limit("UpdateProviderConfig", "budgets", "maxItems"),
        )


def oversized(body: Mapping[str, Any], limits: UpdateLimits) -> list[str]:
    """The lists of ``body`` longer than an update accepts, e.g. ``51 tags (at most 50)``."""
    found = []
    for field, most in (
        ("tags", limits.tags),
        ("budgets", limits.budgets),
        ("provider_configs", limits.provider_configs),
    ):
        value = body.get(field)
        if isinstance(value, list) and len(value) > most:
            found.append(f"{len(value)} {field} (at most {most})")
    configs = body.get("provider_configs")
    for i, config in enumerate(configs if isinstance(configs, list) else []):
        budgets = config.get("budgets") if isinstance(config, dict) else None
        if isinstance(budgets, list) and len(budgets) > limits.provider_budgets:
            found.append(f"{len(budgets)} budgets in provider_configs[{i}] (at most {limits.provider_budgets})")
    return found


def oversized_lists(limits: UpdateLimits) -> dict[str, dict[str, Any]]:
    """Update bodies that each break one limit by one item, by what they hold (``51 tags``...)."""
    budgets = [{"max_limit": 1, "reset_duration": "1M"}]
    return {
        f"{limits.tags + 1} tags": {"tags": [f"tag-{i}" for i in range(limits.tags + 1)]},
        f"{limits.budgets + 1} budgets": {"budgets": budgets * (limits.budgets + 1)},
        f"{limits.provider_configs + 1} provider configs": {
            "provider_configs": [{"provider_name": f"provider-{i}"} for i in range(limits.provider_configs + 1)]
        },
        f"{limits.provider_budgets + 1} budgets in one provider config": {
            "provider_configs": [{"provider_name": "provider-0", "budgets": budgets * (limits.provider_budgets + 1)}]
        },
    }


def oversized_create(limits: UpdateLimits) -> dict[str, Any]:
    """A create body that breaks every update limit by one item at once."""
    budgets = [{"max_limit": 1, "reset_duration": "1M"}]
    first = {"provider_name": "provider-0", "budgets": budgets * (limits.provider_budgets + 1)}
    return {
        "tags": [f"tag-{i}" for i in range(limits.tags + 1)],
        "budgets": budgets * (limits.budgets + 1),
        "provider_configs": [first]
        + [{"provider_name": f"provider-{i}"} for i in range(1, limits.provider_configs + 1)],
    }


def omitted_fields_changed(
    before: Mapping[str, Any], sent: Mapping[str, Any], after: Mapping[str, Any], update_fields: frozenset[str]
) -> list[str]:
    """Fields an update changed although it did not send them (decision 8: updates are partial).

    A field the update schema does not declare (``is_active``, ``created_at``...) may never change,
    even when sent. A changed rotation interval may move ``next_rotation_at`` (decision 19).
    """
    may_change = {key for key in sent if key in update_fields} | set(SERVER_STAMPED)
    if "auto_rotation_interval" in may_change:
        may_change.add("next_rotation_at")
    changed = []
    for key in sorted((set(before) | set(after)) - may_change):
        old, new = before.get(key), after.get(key)
        if old != new:
            changed.append(f"{key} was {_short(old)}, is now {_short(new)}")
    return changed


def rate_limit_kept(sent: Mapping[str, Any], after: Mapping[str, Any]) -> str | None:
    """A ``rate_limit: null`` update must remove the rate limit (decision 8)."""
    if sent.get("rate_limit", _MISSING) is None and after.get("rate_limit") is not None:
        return f"the update sent rate_limit: null, but the profile still has rate_limit {_short(after['rate_limit'])}"
    return None


def version_step(before: Mapping[str, Any], after: Mapping[str, Any]) -> str | None:
    """A change bumps ``version`` by exactly one; an update that changes nothing keeps it (decision 10)."""
    old, new = before.get("version"), after.get("version")
    if not _is_int(old) or not _is_int(new):
        return None  # the schema checks say what is wrong with these
    keys = (set(before) | set(after)) - set(SERVER_STAMPED)
    changed = sorted(key for key in keys if before.get(key) != after.get(key))
    if changed and new != old + 1:
        return f"the update changed {', '.join(changed)}, but version went from {old} to {new}; expected {old + 1}"
    if not changed and new != old:
        return f"the update changed nothing, but version went from {old} to {new}; expected it to stay {old}"
    return None


def history_problem(profile: Mapping[str, Any], row: Any) -> str | None:
    """What is wrong with the history row of the version a change produced (decision 10)."""
    if not isinstance(row, Mapping):
        return "the answer holds no version row"
    if row.get("version") != profile.get("version") or row.get("access_profile_id") != profile.get("id"):
        return f"the row is version {row.get('version')} of profile {row.get('access_profile_id')}"
    try:
        snapshot = json.loads(row.get("snapshot") or "")
    except (TypeError, ValueError):
        return "its snapshot is not JSON text"
    differing = sorted(k for k in set(snapshot) | set(profile) if snapshot.get(k) != profile.get(k))
    if differing:
        return f"its snapshot differs from the profile the update answered in {', '.join(differing)}"
    return None


def page_problems(query: Mapping[str, Any], page: Mapping[str, Any], sizes: PageSize) -> list[str]:
    """What is inconsistent in one page of the profile list (decision 11)."""
    items = page.get("access_profiles")
    count, total, limit, offset = (page.get(k) for k in ("count", "total_count", "limit", "offset"))
    if not (isinstance(items, list) and _is_int(count) and _is_int(total) and _is_int(limit) and _is_int(offset)):
        return []  # the schema checks say what is wrong with the shape
    problems = []
    if count != len(items):
        problems.append(f"count is {count}, but the page holds {len(items)} profiles")
    sent_limit = query.get("limit")
    expected_limit = sizes.limit(sent_limit) if sent_limit is None or _is_int(sent_limit) else None
    if expected_limit is not None and limit != expected_limit:
        problems.append(f"limit={query.get('limit')} should be answered with limit {expected_limit}, got {limit}")
    expected_offset = _expected_offset(query.get("offset"))
    if expected_offset is not None and offset != expected_offset:
        problems.append(f"offset={query.get('offset')} should be answered with offset {expected_offset}, got {offset}")
    if len(items) > limit:
        problems.append(f"the page holds {len(items)} profiles, more than its limit {limit}")
    ids = [item.get("id") for item in items if isinstance(item, dict)]
    numbers = [i for i in ids if _is_int(i)]
    if len(numbers) == len(ids) and numbers != sorted(set(numbers)):
        problems.append(f"profiles are not in ascending id order without repeats: {_short(ids)}")
    if items and total < offset + len(items):
        problems.append(f"total_count is {total}, less than offset {offset} plus the {len(items)} profiles shown")
    elif offset + len(items) < total and len(items) < limit:
        problems.append(
            f"the page holds {len(items)} profiles, fewer than its limit {limit}, "
            f"although {total - offset - len(items)} more match"
        )
    return problems


def filter_problems(query: Mapping[str, Any], page: Mapping[str, Any]) -> list[str]:
    """Profiles on a page that do not match the list filters (decision 11)."""
    items = [item for item in page.get("access_profiles") or [] if isinstance(item, dict)]
    problems = []
    is_active = query.get("is_active")
    if isinstance(is_active, bool):
        wrong = [item.get("id") for item in items if item.get("is_active") is not is_active]
        if wrong:
            problems.append(f"is_active={str(is_active).lower()} listed profiles {_short(wrong)}, which are not")
    search = query.get("search")
    # Case folding of non-ASCII text differs between languages, so only plain ASCII is judged.
    if isinstance(search, str) and search and search.isascii() and search.isprintable():
        needle = search.lower()
        wrong = [
            item.get("id")
            for item in items
            if needle not in str(item.get("name") or "").lower()
            and needle not in str(item.get("description") or "").lower()
        ]
        if wrong:
            problems.append(f"search={search!r} listed profiles {_short(wrong)}, whose name and description lack it")
    tags = query.get("tags")
    if isinstance(tags, str) and tags.isascii():
        wanted = {tag.strip() for tag in tags.split(",") if tag.strip()}
        wrong = [item.get("id") for item in items if wanted and not wanted.intersection(item.get("tags") or [])]
        if wrong:
            problems.append(f"tags={tags!r} listed profiles {_short(wrong)}, which have none of those tags")
    return problems


def overlapping_pages(pages: Sequence[Sequence[int]]) -> str | None:
    """Consecutive pages must continue in ascending id order and never repeat a profile."""
    seen = [profile_id for page in pages for profile_id in page]
    if seen != sorted(set(seen)):
        return f"consecutive pages listed ids {' | '.join(_short(list(page)) for page in pages)}"
    return None


def _expected_offset(sent: Any) -> int | None:
    if sent is None:
        return 0
    return max(sent, 0) if _is_int(sent) else None


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _short(value: Any, width: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."
