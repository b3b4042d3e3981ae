"""``mockserver record``: read a deployment with GET requests into a fixture file the mock loads.

It reads every page of the profile list, each profile's detail (its role attachments), versions,
the audit trail, and the copies and virtual keys of every user it can name. The file is written in the format of
``fixtures/default.json``, deterministically: sorted keys and ids, fixed formatting, so a rerun
gives the same bytes unless the deployment changed. What it could not read, and what the API or
the fixture format cannot carry, is listed at the end.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import quote

import yaml

from mockserver.contract.http import Answer, Http, RequestsHttp, Unreachable, target_from
from mockserver.contract.safety import json_object
from mockserver.resources import bundled_spec
from mockserver.spec.document import Spec, SpecError
from mockserver.spec.fastcheck import first_problem, schema_validator

# Users' e-mail addresses are not exposed by the API; the loader needs one. `.invalid` never resolves.
PLACEHOLDER_DOMAIN = "users.invalid"
# Exit codes: everything the API exposes was read; some requests failed (the file lists the rest);
# nothing could be recorded.
COMPLETE, INCOMPLETE, FAILED = 0, 1, 2


class RecordError(Exception):
    """The recording cannot start or cannot go on (bad options, unreachable, refused credentials)."""


@dataclass(frozen=True)
class RecordSettings:
    """Everything a recording needs to know."""

    base_url: str
    out: Path
    authorization: str | None = None
    spec: Path = field(default_factory=bundled_spec)
    users: tuple[str, ...] = ()  # users whose copies to read, besides those the audit trail names
    timeout: float = 30.0


def settings_from(options: Mapping[str, Any], env: Mapping[str, str]) -> RecordSettings:
    """Settings from command-line ``options``; the URL and credentials may come from ``MOCKSERVER_CONTRACT_*``."""
    base_url, authorization = target_from(options, env, RecordError)
    if not options.get("out"):
        raise RecordError("--out is required: the fixture file to write")
    users = tuple(dict.fromkeys(u.strip() for u in options.get("users") or () if u.strip()))
    values: dict[str, Any] = {
        "base_url": base_url,
        "out": Path(options["out"]),
        "authorization": authorization,
        "users": users,
    }
    for name in ("spec", "timeout"):
        if options.get(name) is not None:
            values[name] = options[name]
    return RecordSettings(**values)


@dataclass(frozen=True)
class Failure:
    """A request that got no usable answer."""

    status: int | None  # None: no answer at all
    reason: str

    def __str__(self) -> str:
        return self.reason


@dataclass
class Recording:
    """What a recording read: the fixture document and the lists shown at the end."""

    document: dict[str, Any]
    left_out: list[str]  # asked for and not recorded: an error answer, or a record the loader would refuse
    not_carried: list[str]  # what the API does not expose, or the fixture format cannot hold
    summary: str


class Recorder:
    """Reads one deployment through ``http`` (GET only) into a ``Recording``."""

    def __init__(self, spec: Spec, http: Http, users: tuple[str, ...] = (), say: Callable[[str], None] = print) -> None:
        self.spec = spec
        self.http = http
        self.named_users = users
        self.say = say
        self.left_out: list[str] = []
        self.not_carried: list[str] = []
        self.unread_users: list[str] = []
        self._check_profile = schema_validator(spec, "AccessProfile")

    def run(self) -> Recording:
        listed = self._profiles()
        profiles: dict[int, dict[str, Any]] = {}
        attachments: list[dict[str, Any]] = []
        user_counts: dict[int, int] = {}
        versions = 0
        for index, profile_id in enumerate(sorted(listed), 1):
            detail = self._detail(profile_id, listed[profile_id])
            if detail is None:
                continue
            profile, roles, user_count = detail
            problem = self._problem(profile)
            if problem is not None:
                self.left_out.append(f"profile {profile_id}: {problem}; the mock would refuse to load it")
                continue
            profiles[profile_id] = profile
            attachments += roles
            if user_count is not None:
                user_counts[profile_id] = user_count
            count = self._versions(profile_id)
            versions += count or 0
            self.say(f"profile {index}/{len(listed)} (id {profile_id}): {len(roles)} roles, {count} versions")
        audit_users, audit_rows = self._audit()
        named = sorted(set(audit_users) | set(self.named_users))
        copies = self._copies(named)
        keys = self._keys(named)
        document = self._document(profiles, attachments, copies, keys)
        self._carried_notes(document, user_counts, versions, audit_rows, audit_users)
        summary = (
            f"{len(document['access_profiles'])} profiles, {len(document['roles'])} roles, "
            f"{len(document['users'])} users, {len(document['role_attachments'])} role attachments, "
            f"{len(document['user_copies'])} users' copies, {len(document['virtual_keys'])} virtual keys"
        )
        return Recording(document, self.left_out, self.not_carried, summary)

    # -- reading -------------------------------------------------------------------------------

    def _get(self, operation_id: str, query: Mapping[str, Any] | None = None, **path: Any) -> Answer | Failure:
        """The 200 answer, or why there is none (for the list of what was left out)."""
        template = self.spec.operations[operation_id].path
        url = template.format(**{k: quote(str(v), safe="") for k, v in path.items()})
        try:
            answer = self.http.request("GET", url, query=query)
        except Unreachable as exc:
            return Failure(None, f"got no answer ({exc})")
        if answer.status != 200 or not isinstance(answer.body, dict):
            return Failure(answer.status, f"answered {answer.describe()}")
        return answer

    def _pages(self, operation_id: str, key: str, what: str) -> list[dict[str, Any]]:
        """Every item of a paged list, page by page; a page that fails is skipped and listed."""
        limit = self.spec.page_size.maximum
        items: list[dict[str, Any]] = []
        offset, total, page = 0, None, 0
        while total is None or offset < total:
            page += 1
            answer = self._get(operation_id, {"limit": limit, "offset": offset})
            if isinstance(answer, Failure):
                if total is None and offset == 0:
                    raise RecordError(f"the first page of {what} {answer}")
                self.left_out.append(f"{what} {offset + 1}-{min(offset + limit, total or 0)}: the list {answer}")
                offset += limit
                continue
            found = answer.body.get(key)
            total = answer.body.get("total_count")
            if not isinstance(found, list) or not isinstance(total, int):
                raise RecordError(f"the list of {what} is not a page of {key} with total_count: {answer.text[:200]}")
            items += [item for item in found if isinstance(item, dict)]
            self.say(f"{what}: page {page}, {offset + 1}-{offset + len(found)} of {total}")
            if not found:
                break
            offset += len(found)
        return items

    def _profiles(self) -> dict[int, dict[str, Any]]:
        listed: dict[int, dict[str, Any]] = {}
        for profile in self._pages("listAccessProfiles", "access_profiles", "profiles"):
            if isinstance(profile.get("id"), int):
                listed.setdefault(profile["id"], profile)
        return listed

    def _detail(
        self, profile_id: int, listed: dict[str, Any]
    ) -> tuple[dict[str, Any], list[dict[str, Any]], int | None] | None:
        """(profile, its role attachments, user_count) from the detail, or from the list when it fails."""
        answer = self._get("getAccessProfile", profile_id=profile_id)
        if isinstance(answer, Failure):
            if answer.status == 404:
                self.left_out.append(f"profile {profile_id}: deleted while recording (its detail {answer})")
                return None
            self.left_out.append(
                f"profile {profile_id}: its detail {answer}; written as the list showed it, "
                "without its role attachments"
            )
            return listed, [], None
        body = answer.body
        profile = body.get("access_profile") if isinstance(body.get("access_profile"), dict) else listed
        roles = [r for r in body.get("roles") or [] if isinstance(r, dict)]
        count = body.get("user_count")
        return profile, roles, count if isinstance(count, int) else None

    def _versions(self, profile_id: int) -> int | None:
        answer = self._get("listAccessProfileVersions", profile_id=profile_id)
        if isinstance(answer, Failure):
            self.left_out.append(f"profile {profile_id}: its versions {answer}")
            return None
        found = answer.body.get("versions")
        return len(found) if isinstance(found, list) else None

    def _audit(self) -> tuple[list[str], int]:
        """Users named by the audit trail (rows about users' copies), and the number of rows."""
        try:
            rows = self._pages("listAccessProfileAuditLogs", "audit_logs", "audit rows")
        except RecordError as exc:
            self.left_out.append(f"the audit trail: {exc}; users it names are not found")
            return [], 0
        users: set[str] = set()
        for row in rows:
            if isinstance(row.get("user_id"), str) and row["user_id"]:
                users.add(row["user_id"])
            # Propagation rows list the users they reached, where the deployment records them.
            metadata = json_object(row.get("metadata"))
            listed = metadata.get("user_ids") if metadata else None
            if isinstance(listed, list):
                users.update(u for u in listed if isinstance(u, str) and u)
        return sorted(users), len(rows)

    def _copies(self, users: list[str]) -> dict[str, list[dict[str, Any]]]:
        copies: dict[str, list[dict[str, Any]]] = {}
        for user_id in users:
            answer = self._get("listUserAccessProfiles", user_id=user_id)
            if isinstance(answer, Failure):
                self.left_out.append(f"user {user_id!r}: the list of their copies {answer}")
                self.unread_users.append(user_id)
                continue
            found = [c for c in answer.body.get("access_profiles") or [] if isinstance(c, dict)]
            copies[user_id] = found
            self.say(f"user {user_id}: {len(found)} copies")
        return copies

    def _keys(self, users: list[str]) -> dict[str, list[dict[str, Any]]]:
        """Each user's keys (listUserVirtualKeys); none when the deployment does not serve that list."""
        keys: dict[str, list[dict[str, Any]]] = {}
        for user_id in users:
            answer = self._get("listUserVirtualKeys", user_id=user_id)
            if isinstance(answer, Failure) and answer.status in (404, 405):
                # The list never answers 404 for a user: the deployment predates the operation.
                self.not_carried.append(
                    f"users' own keys: the deployment does not serve listUserVirtualKeys (it {answer}); only the "
                    "keys of users' copies are made, by the mock"
                )
                return {}
            if isinstance(answer, Failure):
                self.left_out.append(f"user {user_id!r}: the list of their virtual keys {answer}")
                continue
            found = [k for k in answer.body.get("virtual_keys") or [] if isinstance(k, dict)]
            keys[user_id] = found
            self.say(f"user {user_id}: {len(found)} virtual keys")
        return keys

    def _problem(self, profile: dict[str, Any]) -> str | None:
        """Why the loader would refuse a profile (checked as the loader checks it), or None."""
        if self._check_profile.is_valid(profile):
            return None
        found = first_problem(self.spec, "AccessProfile", profile)
        return ": ".join(found) if found else "refused by the AccessProfile schema"

    # -- the fixture document ------------------------------------------------------------------

    def _document(
        self,
        profiles: dict[int, dict[str, Any]],
        attachments: list[dict[str, Any]],
        copies: dict[str, list[dict[str, Any]]],
        keys: dict[str, list[dict[str, Any]]],
    ) -> dict[str, Any]:
        roles: dict[int, str] = {}
        written: list[dict[str, Any]] = []
        defaults: dict[int, int] = {}
        pairs: set[tuple[int, int]] = set()
        for found in sorted(attachments, key=lambda a: (_int(a.get("id")), _int(a.get("access_profile_id")))):
            profile_id, role_id = found.get("access_profile_id"), found.get("role_id")
            if not isinstance(profile_id, int) or not isinstance(role_id, int) or profile_id not in profiles:
                continue
            if (profile_id, role_id) in pairs:
                continue
            pairs.add((profile_id, role_id))
            is_default = found.get("is_default") is True
            if is_default and role_id in defaults:
                self.left_out.append(
                    f"profile {profile_id}: its default flag for role {role_id}, which already has default "
                    f"profile {defaults[role_id]}"
                )
                is_default = False
            if is_default:
                defaults[role_id] = profile_id
            roles.setdefault(role_id, str(found.get("role_name") or f"role-{role_id}"))
            written.append({"access_profile_id": profile_id, "role_id": role_id, "is_default": is_default})
        user_copies: list[dict[str, Any]] = []
        holders = set(self.named_users)
        for user_id in sorted(copies):
            seen: set[int] = set()
            for copy in sorted(copies[user_id], key=lambda c: _int(c.get("id"))):
                parent = copy.get("parent_profile_id")
                if not isinstance(parent, int) or parent not in profiles:
                    why = "its profile was deleted" if parent is None else f"profile {parent} is not recorded"
                    self.left_out.append(f"user {user_id!r}: copy {copy.get('id')}: {why}")
                    continue
                if parent in seen:
                    self.left_out.append(f"user {user_id!r}: copy {copy.get('id')}: a second copy of profile {parent}")
                    continue
                seen.add(parent)
                holders.add(user_id)
                user_copies.append(
                    {
                        "user_id": user_id,
                        "parent_profile_id": parent,
                        "is_active": copy.get("is_active") is not False,
                        "expires_at": copy.get("expires_at") if isinstance(copy.get("expires_at"), str) else None,
                    }
                )
        virtual_keys = self._own_keys(keys, copies, {c["user_id"] for c in user_copies})
        holders.update(k["user_id"] for k in virtual_keys)
        return {
            "access_profiles": [profiles[i] for i in sorted(profiles)],
            "roles": [{"id": i, "name": roles[i], "member_ids": []} for i in sorted(roles)],
            "users": [
                {"id": u, "email": f"{u}@{PLACEHOLDER_DOMAIN}", "role_ids": [], "group_ids": []}
                for u in sorted(holders)
            ],
            "role_attachments": written,
            "user_copies": user_copies,
            "virtual_keys": virtual_keys,
        }

    def _own_keys(
        self, keys: dict[str, list[dict[str, Any]]], copies: dict[str, list[dict[str, Any]]], holding: set[str]
    ) -> list[dict[str, Any]]:
        """The keys that are not a copy's: standalone ones, and extra ones of users holding a recorded copy.

        A copy's keys are left to the mock, which makes them with the copy; names must be unique.
        """
        written: list[dict[str, Any]] = []
        names: set[str] = set()
        for user_id in sorted(keys):
            of_copies = {i for c in copies.get(user_id, []) for i in c.get("virtual_key_ids") or []}
            for key in keys[user_id]:
                name, managed = key.get("name"), key.get("is_access_profile_managed") is True
                if key.get("id") in of_copies or managed and user_id in self.unread_users:
                    continue  # the mock makes a copy's keys; unread copies are listed already
                where = f"user {user_id!r}: virtual key {key.get('id')}"
                if not isinstance(name, str) or not name:
                    self.left_out.append(f"{where}: it has no name")
                    continue
                if name in names:
                    self.left_out.append(f"{where}: its name {name!r} is taken by another recorded key")
                    continue
                if managed and user_id not in holding:
                    self.left_out.append(f"{where}: a key governed by profiles, of a user without a recorded copy")
                    continue
                names.add(name)
                entry: dict[str, Any] = {"user_id": user_id, "name": name}
                if managed:
                    entry["is_access_profile_managed"] = True
                written.append(entry)
        return written

    def _carried_notes(
        self,
        document: dict[str, Any],
        user_counts: dict[int, int],
        versions: int,
        audit_rows: int,
        audit_users: list[str],
    ) -> None:
        note = self.not_carried.append
        profiles = len(document["access_profiles"])
        if versions > profiles:
            note(
                f"history: {versions} versions of {profiles} profiles were read; a fixture holds each profile as it "
                "is now, so a mock started from the file lists one version per profile"
            )
        if audit_rows:
            note(
                f"audit trail: {audit_rows} rows were read; a mock started from the file begins its trail with one "
                "create row per profile"
            )
        if document["roles"]:
            note("role members: the API does not list them; roles are written without members")
        if document["users"]:
            note(
                f"users' e-mail addresses and groups: the API does not expose them; each user gets the placeholder "
                f"<user id>@{PLACEHOLDER_DOMAIN} and no groups"
            )
        if document["user_copies"]:
            note(
                "users' copies: their ids, virtual keys, usage and budget overrides are not in the fixture format; "
                "the mock makes each copy from its profile with new key values (no key value is written)"
            )
        if document["virtual_keys"]:
            note(
                "users' own keys: their ids, values and descriptions are not in the fixture format; the mock "
                "makes them with new values (no key value is written)"
            )
        if document["role_attachments"]:
            note("role attachment ids: the mock numbers attachments in the order of the file")
        found: dict[int, int] = {}
        for copy in document["user_copies"]:
            found[copy["parent_profile_id"]] = found.get(copy["parent_profile_id"], 0) + 1
        unread = len(self.unread_users)
        read = f"the audit trail names {len(audit_users)}"
        read += f", --user names {len(self.named_users)}" if self.named_users else ""
        read += f"; the copies of {unread} could not be read" if unread else ""
        for profile_id, count in sorted(user_counts.items()):
            if count > found.get(profile_id, 0):
                # Copies exist that could be recorded: a gap in the file, not a limit of its format.
                self.left_out.append(
                    f"profile {profile_id}: {count - found.get(profile_id, 0)} of its {count} users' copies were not "
                    f"found: the API cannot list users ({read}); name their holders with --user"
                )


def render(document: dict[str, Any], path: Path) -> bytes:
    """The file's bytes: sorted keys, fixed indentation, one trailing newline (YAML for .yaml/.yml)."""
    if path.suffix in (".yaml", ".yml"):
        text = yaml.safe_dump(document, sort_keys=True, allow_unicode=True, default_flow_style=False, width=120)
    else:
        text = json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    return text.encode("utf-8")


def record(
    settings: RecordSettings,
    out: TextIO | None = None,
    verify: Callable[[Path], None] | None = None,
    http: Http | None = None,
) -> int:
    """Record the deployment into ``settings.out``; returns the exit code (0, 1 or 2).

    ``verify`` loads the written file as the mock would (the CLI passes the fixture loader, which
    this package may not import); the file replaces ``settings.out`` only when it loads.
    """
    stream = out or sys.stdout

    def say(line: str) -> None:
        print(line, file=stream, flush=True)

    try:
        spec = Spec.load(settings.spec)
        client = http or RequestsHttp(settings.base_url, settings.authorization, settings.timeout)
        say(f"mockserver record: {settings.base_url} into {settings.out}")
        recording = Recorder(spec, client, settings.users, say).run()
    except (SpecError, RecordError, KeyError) as exc:
        print(f"mockserver record: error: {exc}", file=sys.stderr)
        return FAILED
    data = render(recording.document, settings.out)
    try:
        changed = _write(settings.out, data, verify)
    except OSError as exc:
        print(f"mockserver record: error: cannot write {settings.out}: {exc.strerror}", file=sys.stderr)
        return FAILED
    except Exception as exc:  # whatever the verifier raises: the file would not load
        print(f"mockserver record: error: the recorded file does not load, nothing written: {exc}", file=sys.stderr)
        return FAILED
    say(f"wrote {settings.out}: {recording.summary}" + ("" if changed else " (unchanged)"))
    if recording.not_carried:
        say("\nNot in the file (the API does not expose it, or the fixture format cannot hold it):")
        for line in recording.not_carried:
            say(f"  - {line}")
    if recording.left_out:
        say(f"\nLeft out ({len(recording.left_out)}):")
        for line in recording.left_out:
            say(f"  - {line}")
        return INCOMPLETE
    return COMPLETE


def _write(path: Path, data: bytes, verify: Callable[[Path], None] | None) -> bool:
    """Write through a temporary file in the same folder; False when the file already held these bytes."""
    try:
        if path.read_bytes() == data:
            return False
    except OSError:
        pass
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp{path.suffix}")
    try:
        temporary.write_bytes(data)
        if verify is not None:
            verify(temporary)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return True


def _int(value: Any) -> int:
    return value if isinstance(value, int) else 0
