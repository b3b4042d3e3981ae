"""The peers `make bench` serves beside the mock: WireMock and Mockoon, each serving the mock's own answers.

Neither validates anything: each is given, per benchmarked request, the status, headers and bytes
the mock answered (``Canned``), so every server sends the same body. Prism answers from the spec's
examples and is started by bench.py itself. Everything binds to 127.0.0.1.

- WireMock: the standalone jar of the npm package ``wiremock`` (package-lock.json pins it), run on
  Java 17 (apt); one stub per request in ``mappings/``, its body in ``__files/``, with
  ``Content-Length`` (``--use-chunked-encoding never``), as the mock sends it. Its request journal
  stays on, kept to 1,000 entries (the mock keeps a journal too).
- Mockoon: ``mockoon-cli`` (npm ``@mockoon/cli``), one route per request, templating off (the body is
  sent as given), logging to stdout only (``-X``).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WIREMOCK_JAR = ROOT / "node_modules" / "wiremock" / "build" / "wiremock-standalone-3.13.2.jar"
MOCKOON = ROOT / "node_modules" / ".bin" / "mockoon-cli"


@dataclass(frozen=True)
class Canned:
    """One answer of the mock, to be served as it is: for ``method`` on ``path`` (the query ignored)."""

    method: str
    path: str
    status: int
    content_type: str
    body: bytes
    location: str | None = None

    def headers(self) -> dict[str, str]:
        found = {"Content-Type": self.content_type}
        if self.location:
            found["Location"] = self.location
        return found


def wiremock_command(folder: Path, port: int, answers: list[Canned]) -> list[str]:
    """Write WireMock's root folder for ``answers``; the command that serves it on 127.0.0.1:``port``."""
    (folder / "mappings").mkdir(parents=True, exist_ok=True)
    (folder / "__files").mkdir(exist_ok=True)
    for n, answer in enumerate(answers):
        (folder / "__files" / f"{n}.json").write_bytes(answer.body)
        stub = {
            "request": {"method": answer.method, "urlPath": answer.path},
            "response": {"status": answer.status, "headers": answer.headers(), "bodyFileName": f"{n}.json"},
        }
        (folder / "mappings" / f"{n}.json").write_text(json.dumps(stub), encoding="utf-8")
    return [
        "java",
        "-jar",
        str(WIREMOCK_JAR),
        "--port",
        str(port),
        "--bind-address",
        "127.0.0.1",
        "--disable-banner",
        "--root-dir",
        str(folder),
        "--use-chunked-encoding",
        "never",
        "--max-request-journal-entries",
        "1000",
    ]


def wiremock_version() -> str:
    return WIREMOCK_JAR.stem.rsplit("-", 1)[-1]


def mockoon_command(folder: Path, port: int, answers: list[Canned]) -> list[str]:
    """Write a Mockoon environment for ``answers``; the command that serves it on 127.0.0.1:``port``."""
    folder.mkdir(parents=True, exist_ok=True)
    routes = [_mockoon_route(answer) for answer in answers]
    environment = {
        "uuid": str(uuid.uuid4()),
        "lastMigration": 33,
        "name": "mockserver bench",
        "endpointPrefix": "",
        "latency": 0,
        "port": port,
        "hostname": "127.0.0.1",
        "folders": [],
        "routes": routes,
        "rootChildren": [{"type": "route", "uuid": route["uuid"]} for route in routes],
        "proxyMode": False,
        "proxyHost": "",
        "proxyRemovePrefix": False,
        "tlsOptions": {"enabled": False},
        "cors": False,
        "headers": [],
        "proxyReqHeaders": [],
        "proxyResHeaders": [],
        "data": [],
        "callbacks": [],
    }
    path = folder / "environment.json"
    path.write_text(json.dumps(environment), encoding="utf-8")
    return [str(MOCKOON), "start", "-d", str(path), "-p", str(port), "-l", "127.0.0.1", "-X"]


def _mockoon_route(answer: Canned) -> dict[str, object]:
    return {
        "uuid": str(uuid.uuid4()),
        "type": "http",
        "documentation": "",
        "method": answer.method.lower(),
        "endpoint": answer.path.lstrip("/"),
        "responses": [
            {
                "uuid": str(uuid.uuid4()),
                "body": answer.body.decode(),
                "latency": 0,
                "statusCode": answer.status,
                "label": "",
                "headers": [{"key": k, "value": v} for k, v in answer.headers().items()],
                "bodyType": "INLINE",
                "filePath": "",
                "databucketID": "",
                "sendFileAsBody": False,
                "rules": [],
                "rulesOperator": "OR",
                "disableTemplating": True,
                "fallbackTo404": False,
                "default": True,
                "crudKey": "id",
                "callbacks": [],
            }
        ],
        "responseMode": None,
        "streamingMode": None,
        "streamingInterval": 0,
    }
