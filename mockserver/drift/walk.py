"""Walking steps in lockstep: each request goes to the deployment and to the mock, and the answers are compared.

A ``Side`` is one of the two APIs with what it handed out so far: the ids of the profiles the
steps saved, its latest answer about each, and its ``Normaliser``. The deployment's side also has
the guard and the run's ownership, so a step that would change anything else is not sent.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from mockserver.contract.http import Answer, Http
from mockserver.contract.safety import Guard, Ownership
from mockserver.drift.compare import Difference, Normaliser, differences, lines, shape
from mockserver.drift.tour import NO_CREDENTIALS, RUN_USER, SHAPE, UNKNOWN_CREDENTIALS, Name, Saved, Step

UNKNOWN_KEY = "Bearer mockserver-diff-not-a-key"
_PLACEHOLDER = re.compile(r"\{([^{}/]+)\}")
# What happened to a step.
COMPARED, SKIPPED, NOT_SENT = "compared", "skipped", "not sent"
CANONICAL_LETTER = "c"  # the letter of the canonical family's section (drift.run)


@dataclass
class Side:
    """One of the two APIs, and what it handed out during the run."""

    label: str
    connect: Callable[[str | None], Http]  # an Http that sends this Authorization (None: no credentials)
    authorization: str | None
    normaliser: Normaliser
    guard: Guard | None = None
    ownership: Ownership | None = None
    profiles: dict[str, int] = field(default_factory=dict)
    latest: dict[str, dict[str, Any]] = field(default_factory=dict)
    _http: dict[str | None, Http] = field(default_factory=dict, init=False, repr=False)

    def http(self, auth: str) -> Http:
        """This side's client for a step's ``auth``: the run's credentials, none, or an unknown key."""
        authorization = {NO_CREDENTIALS: None, UNKNOWN_CREDENTIALS: UNKNOWN_KEY}.get(auth, self.authorization)
        if authorization not in self._http:
            self._http[authorization] = self.connect(authorization)
        return self._http[authorization]

    def close(self) -> None:
        for http in self._http.values():
            close = getattr(http, "close", None)
            if close is not None:
                close()


@dataclass(frozen=True)
class Sent:
    """A step as one side sent it."""

    path: str
    query: dict[str, Any]
    body: Any


@dataclass
class StepResult:
    """What a step found: the differences, and both answers in normal form."""

    section: str
    number: str
    step: Step
    request: str  # the request as written in the tour (placeholders, not one side's ids)
    outcome: str = COMPARED
    reason: str = ""  # why a step was skipped or not sent
    differences: list[Difference] = field(default_factory=list)
    forms: tuple[Any, Any] = (None, None)  # the normal form of each answer: the mock's, the deployment's
    messages: tuple[str | None, str | None] = (None, None)  # each side's error message, shown, not compared

    @property
    def mock(self) -> list[str]:
        """The mock's answer in normal form, as the lines shown side by side."""
        return lines(self.forms[0])

    @property
    def deployment(self) -> list[str]:
        return lines(self.forms[1])


class Skip(Exception):
    """A step cannot be sent as written: a profile it names was not created on a side."""


class Walk:
    """Sends steps to both sides in lockstep, the deployment first."""

    def __init__(self, mock: Side, deployment: Side, prefix: str, *, read_only: bool = False) -> None:
        self.mock = mock
        self.deployment = deployment
        self.prefix = prefix  # the run's name prefix; names add a section letter to it
        self.read_only = read_only

    def step(self, section: str, number: str, step: Step, collection: str, letter: str) -> StepResult:
        """Send ``step`` to both sides and compare the answers (or say why it was not sent)."""
        request = describe(step, collection, letter).replace(self.prefix, "<run>-")
        result = StepResult(section, number, step, request)
        if step.canonical_only and letter != CANONICAL_LETTER:
            result.outcome, result.reason = SKIPPED, "upstream publishes no deprecated path for this operation"
            return result
        if self.read_only and step.changes:
            result.outcome, result.reason = SKIPPED, "read-only run"
            return result
        try:
            sent = {side.label: self._resolve(side, step, collection, letter) for side in (self.mock, self.deployment)}
        except Skip as exc:
            result.outcome, result.reason = SKIPPED, str(exc)
            return result
        ours = sent[self.deployment.label]
        guard = self.deployment.guard
        if guard is not None:
            url = guard.base_url.rstrip("/") + ours.path
            refusal = guard.refusal(step.method, url, None if ours.body is None else json.dumps(ours.body))
            if refusal is not None:
                result.outcome, result.reason = NOT_SENT, f"would change data the run does not own: {refusal}"
                return result
        deployment_answer = self._send(self.deployment, step, ours, collection)
        mock_answer = self._send(self.mock, step, sent[self.mock.label], collection)
        mock_form = self._normal(self.mock, step, mock_answer)
        deployment_form = self._normal(self.deployment, step, deployment_answer)
        result.differences = differences(mock_form, deployment_form)
        result.forms = (mock_form, deployment_form)
        result.messages = (_message(mock_answer), _message(deployment_answer))
        return result

    def _resolve(self, side: Side, step: Step, collection: str, letter: str) -> Sent:
        family = self.prefix + letter + "-"

        def fill(match: re.Match[str]) -> str:
            name = match.group(1)
            if name == RUN_USER:
                return name_of(Name(RUN_USER), family)
            if name not in side.profiles:
                raise Skip(f"profile {{{name}}} was not created on the {side.label}")
            return str(side.profiles[name])

        path = base_of(step, collection) + _PLACEHOLDER.sub(fill, step.path)
        query = {key: self._value(side, value, family) for key, value in step.query.items()}
        return Sent(path, query, self._value(side, step.body, family))

    def _value(self, side: Side, value: Any, family: str) -> Any:
        if isinstance(value, Name):
            return name_of(value, family)
        if isinstance(value, Saved):
            return saved(side, value)
        if isinstance(value, dict):
            return {key: self._value(side, item, family) for key, item in value.items()}
        if isinstance(value, list):
            return [self._value(side, item, family) for item in value]
        return value

    def _send(self, side: Side, step: Step, sent: Sent, collection: str) -> Answer:
        answer = side.http(step.auth).request(step.method, sent.path, body=sent.body, query=sent.query)
        profile = answer.profile()
        profile_id = profile.get("id") if profile is not None else None
        if answer.status == 201 and isinstance(profile_id, int) and not isinstance(profile_id, bool):
            if side.ownership is not None:
                side.ownership.adopt(profile_id)
            if step.saves is not None:
                side.profiles[step.saves] = profile_id
                side.normaliser.name_profile(profile_id, step.saves)
        if step.method == "DELETE" and 200 <= answer.status < 300 and side.ownership is not None:
            deleted = re.fullmatch(re.escape(collection) + r"/(\d+)", sent.path)
            if deleted is not None:
                side.ownership.release(int(deleted.group(1)))
        if profile is not None and 200 <= answer.status < 300:
            for name, known in side.profiles.items():
                if known == profile_id:
                    side.latest[name] = profile
        return answer

    def _normal(self, side: Side, step: Step, answer: Answer) -> Any:
        if step.compare == SHAPE and answer.status < 400:
            # Data the run does not own: no names are given out for it, only which fields it has.
            return {"status": answer.status, "body": shape(answer.body)}
        return side.normaliser.answer(answer.status, answer.body, answer.headers, step.headers)


def name_of(name: Name, family: str) -> str:
    """The name a ``Name`` stands for on this path family (the same on both sides)."""
    text = family + name.key
    if name.length is not None:
        text = text[: name.length].ljust(name.length, "x")
    return text.upper() if name.upper else text


def saved(side: Side, value: Saved) -> Any:
    """A value from a side's latest answer about a saved profile."""
    current: Any = side.latest.get(value.profile)
    for part in value.path:
        try:
            current = current[part]
        except (KeyError, IndexError, TypeError):
            where = ".".join(str(p) for p in value.path)
            raise Skip(f"the {side.label} gave no {where} for profile {{{value.profile}}}") from None
    return current


def base_of(step: Step, collection: str) -> str:
    """What a step's path is below: the profile collection, or the same family's users collection."""
    return collection.rsplit("/", 1)[0] + "/users" if step.users else collection


def describe(step: Step, collection: str, letter: str) -> str:
    """A step's request as written: method, path with its placeholders, query, body."""
    query = "&".join(f"{key}={_shown(value, letter)}" for key, value in step.query.items())
    text = f"{step.method} {base_of(step, collection)}{step.path}" + (f"?{query}" if query else "")
    if step.auth == NO_CREDENTIALS:
        text += "  (no credentials)"
    elif step.auth == UNKNOWN_CREDENTIALS:
        text += "  (a key the server does not know)"
    if step.body is not None:
        body = json.dumps(_written(step.body, letter), ensure_ascii=False)
        text += "  " + (body if len(body) <= 300 else body[:297] + "...")
    return text


def _shown(value: Any, letter: str) -> str:
    return quote(str(_written(value, letter)), safe="<>-_ ,.()")


def _written(value: Any, letter: str) -> Any:
    """A step's value with the run's names written as ``<run>-c-alpha`` and saved values by where they come from."""
    if isinstance(value, Name):
        shown = f"<run>-{letter}-{value.key}"
        if value.length is not None:
            shown += f"xxx... ({value.length} characters)"
        return shown.upper() if value.upper else shown
    if isinstance(value, Saved):
        return "{" + value.profile + "}." + ".".join(str(p) for p in value.path)
    if isinstance(value, dict):
        return {key: _written(item, letter) for key, item in value.items()}
    if isinstance(value, list):
        return [_written(item, letter) for item in value]
    return value


def _message(answer: Answer) -> str | None:
    message = answer.message()
    return message if isinstance(message, str) else None
