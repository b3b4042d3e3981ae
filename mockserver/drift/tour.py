"""The fixed tour of ``mockserver diff``: every step written once, in the order it is sent.

Each step is one request, sent alike to the deployment and to the mock; its title says what the
mock does there, which is what the deployment's answer is compared with. Paths are relative to a
profile collection, so the tour runs on each path family. ``{a}`` names a profile the tour created
(``saves="a"``); each side fills in its own id. Names are the run's: ``Name("alpha")`` becomes
``mockserver-diff-<run>-c-alpha`` on both sides. The limits the tour tries (a name's length,
the tags of an update, the page size) are read from the spec.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mockserver.contract.rules import UpdateLimits
from mockserver.contract.safety import SAFE_METHODS
from mockserver.spec.document import Spec

# Who sends a step: the run's credentials, none at all, or a made-up key no server knows.
RUN, NO_CREDENTIALS, UNKNOWN_CREDENTIALS = "run", "none", "unknown"
# What is compared: everything (status, error type and param, fields and values), or the shape
# only (status and which fields are present), for answers about data the run does not own.
ALL, SHAPE = "all", "shape"
# The placeholder of a user id of the run's own (its prefix, the family's letter, "user"): no real
# user has it, so a key minted for it is refused on both sides and changes nothing. The guard lets
# a change to a user's keys through only for such an id.
RUN_USER = "user"


@dataclass(frozen=True)
class Name:
    """A name of this run: its prefix, the path family and ``key``, padded with ``x`` to ``length``."""

    key: str
    length: int | None = None
    upper: bool = False


@dataclass(frozen=True)
class Saved:
    """A value from this side's latest answer about profile ``profile``, e.g. a budget's id."""

    profile: str
    path: tuple[str | int, ...]


@dataclass(frozen=True)
class Step:
    """One request of the tour (or of a generated sequence), and what to compare of its answers."""

    title: str
    method: str
    path: str = ""  # below the profile collection; {a} is the id of the profile saved as "a"
    body: Any = None
    query: Mapping[str, Any] = field(default_factory=dict)
    saves: str | None = None  # a created profile is known as {saves} from then on
    auth: str = RUN
    compare: str = ALL
    headers: tuple[str, ...] = ()  # answer headers compared too
    # The path is below the family's users collection (/api/governance/users, /api/users) instead.
    users: bool = False
    # Upstream mounts no deprecated twin of this operation: the step is walked on the canonical paths only.
    canonical_only: bool = False

    @property
    def changes(self) -> bool:
        return self.method not in SAFE_METHODS


def tags(count: int) -> list[str]:
    return [f"t{i}" for i in range(count)]


RICH = {
    "name": Name("alpha"),
    "description": Name("alpha described"),  # the run's prefix, so a search finds only the run's profiles
    "tags": ["blue", "green"],
    "budgets": [{"max_limit": 100, "reset_duration": "1M"}, {"max_limit": 10, "reset_duration": "1d"}],
    "provider_configs": [
        {
            "provider_name": "openai",
            "allowed_models": ["gpt-4o"],
            "budgets": [{"max_limit": 5, "reset_duration": "1w"}],
            "rate_limit": {"token_max_limit": 1000, "token_reset_duration": "1h"},
        }
    ],
    "rate_limit": {"request_max_limit": 600, "request_reset_duration": "1h"},
    "calendar_aligned": True,
    "auto_rotation_interval": "30d",
}
PAGE = {"search": Name("")}  # the run's profiles on this path family, nobody else's


def tour(spec: Spec) -> tuple[Step, ...]:
    """The tour, with the limits it tries read from ``spec``.

    Raises ``SpecError`` when the spec does not state them.
    """
    name_max = spec.limit("CreateAccessProfileRequest", "name", "maxLength")
    tags_max = UpdateLimits.from_spec(spec).tags
    page_max = spec.page_size.maximum
    return _steps(name_max, tags_max, page_max)


def _steps(name_max: int, tags_max: int, page_max: int) -> tuple[Step, ...]:
    return (
        # -- credentials
        Step("no credentials: 401", "GET", query={"limit": 1}, auth=NO_CREDENTIALS),
        Step("a key the server does not know: 401", "GET", query={"limit": 1}, auth=UNKNOWN_CREDENTIALS),
        # -- create
        Step(
            "create with budgets, a provider config, a rate limit, tags and rotation: 201, version 1",
            "POST",
            body=RICH,
            saves="a",
            headers=("Location",),
        ),
        Step("read it back", "GET", "/{a}"),
        Step(
            "create with a name and a description only: empty arrays, no rate limit, rotation off",
            "POST",
            body={"name": Name("beta"), "description": Name("beta described")},
            saves="b",
        ),
        Step("create with a name in use: 409, param name", "POST", body={"name": Name("alpha")}),
        Step("create with a blank name: 400, param name", "POST", body={"name": "   "}),
        Step("create without a name: 400", "POST", body={"description": "no name"}),
        Step(f"create with a {name_max}-character name: 201", "POST", body={"name": Name("long", name_max)}, saves="c"),
        Step(
            f"create with a {name_max + 1}-character name: 400, param name",
            "POST",
            body={"name": Name("longer", name_max + 1)},
        ),
        Step(
            f"create with {tags_max + 1} tags: 201 (create has no size limits)",
            "POST",
            body={"name": Name("tags"), "tags": tags(tags_max + 1)},
            saves="d",
        ),
        Step(
            "create with a budget window that does not exist: 400, param budgets[0].reset_duration",
            "POST",
            body={"name": Name("bad window"), "budgets": [{"max_limit": 1, "reset_duration": "2d"}]},
        ),
        Step(
            "create with the same provider twice: 400",
            "POST",
            body={
                "name": Name("twice"),
                "provider_configs": [{"provider_name": "openai"}, {"provider_name": "openai"}],
            },
        ),
        Step(
            "create with a rotation interval under 1h: 400",
            "POST",
            body={"name": Name("fast rotation"), "auto_rotation_interval": "30m"},
        ),
        Step(
            "create with next_rotation_at in the past: 400",
            "POST",
            body={"name": Name("past"), "auto_rotation_interval": "1d", "next_rotation_at": "2001-01-01T00:00:00Z"},
        ),
        # -- partial updates
        Step(
            "update the description only: the rest is kept, version 2", "PUT", "/{a}", body={"description": "changed"}
        ),
        Step("rate_limit: null removes the rate limit", "PUT", "/{a}", body={"rate_limit": None}),
        Step("read back: no rate_limit", "GET", "/{a}"),
        Step(
            "a rate limit sent again starts fresh",
            "PUT",
            "/{a}",
            body={"rate_limit": {"request_max_limit": 60, "request_reset_duration": "1d"}},
        ),
        Step(
            "budgets sent with the id of a stored one keep that budget (id, usage, last reset); others are new",
            "PUT",
            "/{a}",
            body={
                "budgets": [
                    {"id": Saved("a", ("budgets", 0, "id")), "max_limit": 200, "reset_duration": "1M"},
                    {"max_limit": 1, "reset_duration": "1Y"},
                ]
            },
        ),
        Step(
            "a provider config sent again by name keeps its id; its budgets are replaced",
            "PUT",
            "/{a}",
            body={"provider_configs": [{"provider_name": "openai", "all_models_allowed": True}]},
        ),
        Step(
            "description: null stores null, calendar_aligned: null keeps the value",
            "PUT",
            "/{a}",
            body={"description": None, "calendar_aligned": None},
        ),
        Step("an update that changes nothing: 200, no version bump", "PUT", "/{a}", body={"tags": ["blue", "green"]}),
        Step("fields the API does not know are ignored", "PUT", "/{a}", body={"not_a_field": 1}),
        Step(f"{tags_max} tags on update: accepted", "PUT", "/{a}", body={"tags": tags(tags_max)}),
        Step(f"{tags_max + 1} tags on update: 400, param tags", "PUT", "/{a}", body={"tags": tags(tags_max + 1)}),
        Step(
            f"a {name_max}-character name on update: accepted",
            "PUT",
            "/{b}",
            body={"name": Name("long beta", name_max)},
        ),
        Step(
            f"a {name_max + 1}-character name on update: 400, param name",
            "PUT",
            "/{b}",
            body={"name": Name("longer beta", name_max + 1)},
        ),
        Step("renaming to a name in use: 409, param name", "PUT", "/{b}", body={"name": Name("alpha")}),
        Step("a body that is a JSON array: 400", "PUT", "/{b}", body=["not", "an", "object"]),
        Step('auto_rotation_interval "" turns rotation off', "PUT", "/{a}", body={"auto_rotation_interval": ""}),
        Step("read back after the updates", "GET", "/{a}"),
        # -- activate and deactivate
        Step("deactivate: is_active false, version unchanged", "PUT", "/{a}/deactivate"),
        Step("deactivate again: nothing changes", "PUT", "/{a}/deactivate"),
        Step("list the run's inactive profiles", "GET", query={**PAGE, "is_active": "false"}),
        Step("activate", "PUT", "/{a}/activate"),
        # -- clone
        Step(
            "clone: 201, a new profile with the template's fields, version 1, active",
            "POST",
            "/{a}/clone",
            body={"name": Name("alpha copy")},
            saves="copy",
        ),
        Step("read the clone", "GET", "/{copy}"),
        Step("clone to a name in use: 409", "POST", "/{a}/clone", body={"name": Name("alpha")}),
        Step("clone with a blank name: 400", "POST", "/{a}/clone", body={"name": "  "}),
        # -- versions and the audit trail
        Step("the versions, oldest first, each with a snapshot", "GET", "/{a}/versions"),
        Step("version 2", "GET", "/{a}/versions/2"),
        Step("a version that does not exist: 404", "GET", "/{a}/versions/999"),
        Step("the profile's audit trail, newest first", "GET", "/{a}/audit-logs"),
        Step(
            "its updates only, second page of two",
            "GET",
            "/{a}/audit-logs",
            query={"action": "update", "limit": 2, "offset": 2},
        ),
        Step("the audit trail of all profiles (shape only)", "GET", "/audit-logs", query={"limit": 1}, compare=SHAPE),
        # -- users' copies and roles, on a profile no user holds
        Step(
            "propagate, dry run, to a profile without copies: zero counts",
            "POST",
            "/{a}/propagate",
            body={"fields": ["budgets", "rate_limit"], "dry_run": True},
        ),
        Step(
            "propagate to a profile without copies: zero counts", "POST", "/{a}/propagate", body={"fields": ["budgets"]}
        ),
        Step("detach a role that is not attached: 404", "DELETE", "/{a}/roles/1"),
        # -- a user's keys, for a user of the run's own, whom no profile reaches
        Step("the keys of a user who has none: an empty list", "GET", "/{user}/virtual-keys", users=True),
        Step(
            "mint a key for a user who holds no profile: 404",
            "POST",
            "/{user}/virtual-keys",
            body={"name": Name("key")},
            users=True,
            canonical_only=True,
        ),
        Step(
            "mint a key named with a number: 400, param name",
            "POST",
            "/{user}/virtual-keys",
            body={"name": 7},
            users=True,
            canonical_only=True,
        ),
        Step(
            "the caller's key-creation policy: no profile for an admin or a management key",
            "GET",
            "/me/vk-creation-policy",
            users=True,
            canonical_only=True,
        ),
        Step(
            "the key-creation policy without credentials: 401",
            "GET",
            "/me/vk-creation-policy",
            users=True,
            canonical_only=True,
            auth=NO_CREDENTIALS,
        ),
        # -- paging and search, over the run's own profiles
        Step("the run's profiles, in ascending id order", "GET", query=PAGE),
        Step("pages of two: the second one", "GET", query={**PAGE, "limit": 2, "offset": 2}),
        Step("limit 0 means the default page size", "GET", query={**PAGE, "limit": 0}),
        Step(f"a limit over {page_max} means {page_max}", "GET", query={**PAGE, "limit": 5 * page_max}),
        Step("a negative offset means 0", "GET", query={**PAGE, "limit": 1, "offset": -3}),
        Step("search is case-insensitive, on the name", "GET", query={"search": Name("alpha copy", upper=True)}),
        Step("search matches the description too", "GET", query={"search": Name("beta described")}),
        Step("tags=a,b matches any of the tags", "GET", query={**PAGE, "tags": f" blue ,t{tags_max - 1}"}),
        # -- unknown and malformed ids
        Step("an id no profile has: 404", "GET", "/0"),
        Step("an id past int64: 404", "GET", "/9223372036854775808"),
        Step("an id that is not a number: 400, param profile_id", "GET", "/abc"),
        Step("a decimal id: 400, param profile_id", "GET", "/1.5"),
        Step("PATCH is not a method of a profile: 405 with Allow", "PATCH", "/{a}", body={}, headers=("Allow",)),
        Step("OPTIONS is not a method of the collection: 405", "OPTIONS", headers=("Allow",)),
        # -- delete
        Step("delete the clone: 200", "DELETE", "/{copy}"),
        Step("read the deleted profile: 404", "GET", "/{copy}"),
        Step("delete it again: 404", "DELETE", "/{copy}"),
        Step("update the deleted profile: 404", "PUT", "/{copy}", body={"description": "gone"}),
        Step("versions of the deleted profile", "GET", "/{copy}/versions"),
        Step("audit trail of the deleted profile", "GET", "/{copy}/audit-logs"),
        Step("delete profile a", "DELETE", "/{a}"),
        Step("delete profile b", "DELETE", "/{b}"),
        Step("delete profile c", "DELETE", "/{c}"),
        Step("delete profile d", "DELETE", "/{d}"),
        Step("none of the tour's profiles is left", "GET", query=PAGE),
    )
