"""Many clients at once against a served mock (waitress, threads): no lost update, no duplicate id."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests
from conftest import CANONICAL
from flask import Flask

from mockserver import BackgroundServer

THREADS = 8
PER_THREAD = 25
AUTH = {"Authorization": "Bearer load-test"}


@pytest.fixture
def served(make_app: Callable[..., Flask]) -> Iterator[tuple[Flask, str]]:
    app = make_app()
    with BackgroundServer(app, threads=THREADS) as server:
        yield app, server.url


Answer = tuple[int, Any]


def call(method: str, url: str, body: Any) -> Callable[[], Answer]:
    """A request as a job; only status and JSON are kept, so no connection outlives its job."""

    def job() -> Answer:
        with requests.request(method, url, json=body, headers=AUTH) as response:
            return response.status_code, response.json()

    return job


def run_all(jobs: list[Callable[[], Answer]]) -> list[Answer]:
    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        return list(pool.map(lambda job: job(), jobs))


def test_concurrent_updates_of_one_profile_lose_nothing(served: tuple[Flask, str]) -> None:
    app, url = served
    start = requests.get(f"{url}{CANONICAL}/1", headers=AUTH).json()["access_profile"]["version"]

    def update(n: int) -> Callable[[], Answer]:
        return call("PUT", f"{url}{CANONICAL}/1", {"description": f"edit {n}"})

    responses = run_all([update(n) for n in range(THREADS * PER_THREAD)])
    assert [status for status, _ in responses] == [200] * len(responses)
    versions = sorted(body["access_profile"]["version"] for _, body in responses)
    assert versions == list(range(start + 1, start + 1 + len(responses)))  # each answer saw its own change

    history = app.extensions["mockserver"].store.snapshot().history.versions(1)
    numbers = [row["version"] for row in history]
    assert numbers == list(range(start, start + 1 + len(responses)))  # strictly increasing, none lost
    final = requests.get(f"{url}{CANONICAL}/1", headers=AUTH).json()["access_profile"]
    assert final["version"] == start + len(responses)
    assert final["description"] == history[-1]["description"]


def test_concurrent_creates_get_distinct_ids_and_unique_names_hold(served: tuple[Flask, str]) -> None:
    _, url = served

    def create(name: str) -> Callable[[], Answer]:
        return call("POST", f"{url}{CANONICAL}", {"name": name})

    distinct = run_all([create(f"profile {n}") for n in range(100)])
    assert {status for status, _ in distinct} == {201}
    ids = [body["access_profile"]["id"] for _, body in distinct]
    assert len(set(ids)) == 100

    same = run_all([create("only one wins") for _ in range(40)])
    assert sorted(status for status, _ in same) == [201] + [409] * 39
    listing = requests.get(f"{url}{CANONICAL}?search=only one wins", headers=AUTH).json()
    assert listing["total_count"] == 1
