"""A small in-memory HubSpot behind ``MockTransport``: v3 ticket create/update/read and the
properties read, with trace ids, and a script of answers by request number. Engine tests use
it to reach every branch of the policy without sockets; the embedded fake (over HTTP) is for
end-to-end tests."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

from bulkops._http import HttpRequest, HttpResponse, TransportFailure
from bulkops.testing import MockTransport
from bulkops.testing._mock_transport import json_response

Scripted = (
    HttpResponse
    | TransportFailure
    | Callable[[HttpRequest], HttpResponse | TransportFailure | None]
)

PROPERTIES = {
    "results": [
        {"name": "subject", "type": "string", "fieldType": "text"},
        {"name": "content", "type": "string", "fieldType": "textarea"},
        {"name": "hs_pipeline_stage", "type": "enumeration", "fieldType": "select",
         "options": [{"value": v, "label": v} for v in ("1", "2", "3", "4")]},
        {"name": "external_id", "type": "string", "fieldType": "text", "hasUniqueValue": True},
    ]
}  # fmt: skip


class MockHub:
    """``script[n]`` (1-based request number) answers request n instead of the store; a
    callable gets the request and may return None to let the store answer. ``write_then``:
    request numbers whose writes are applied before the scripted answer (write-then-fail)."""

    def __init__(self) -> None:
        self.records: dict[str, dict[str, str]] = {}
        self.by_unique: dict[str, str] = {}
        self.script: dict[int, Scripted] = {}
        self.write_then: set[int] = set()
        self.always: Callable[[HttpRequest], Any] | None = None
        self.hidden: set[str] = set()  # ids a read does not see yet (read-after-write lag)
        self._ids = itertools.count(1001)
        self.n = 0
        self.transport = MockTransport(self.handle, host="hub.test")
        self.creates = 0

    @property
    def requests(self) -> list[HttpRequest]:
        return self.transport.requests

    def handle(self, request: HttpRequest) -> HttpResponse:
        self.n += 1
        if self.n in self.write_then:
            self._store(request)
        scripted = self.script.get(self.n)
        if scripted is None and self.always is not None:
            scripted = self.always
        if isinstance(scripted, TransportFailure):
            raise scripted
        if isinstance(scripted, HttpResponse):
            return scripted
        if scripted is not None:
            answer = scripted(request)
            if isinstance(answer, TransportFailure):
                raise answer
            if answer is not None:
                return answer
        if self.n in self.write_then:
            return json_response(500, {"status": "error", "message": "internal error"})
        return self._store(request)

    def _store(self, request: HttpRequest) -> HttpResponse:
        path = request.path
        if request.method == "GET" and "/properties/" in path:
            return json_response(200, PROPERTIES)
        body: dict[str, Any] = request.body
        if path.endswith("/batch/create"):
            return self._create(body)
        if path.endswith("/batch/update"):
            return self._update(body)
        if path.endswith("/batch/read"):
            return self._read(body)
        return json_response(404, {"status": "error", "message": f"no route {path}"})

    def _create(self, body: dict[str, Any]) -> HttpResponse:
        results, errors = [], []
        for entry in body["inputs"]:
            props = dict(entry["properties"])
            ext = props.get("external_id")
            if ext and ext in self.by_unique:
                existing = self.by_unique[ext]
                errors.append(
                    {
                        "status": "error",
                        "category": "CONFLICT",
                        "message": f"A ticket with external_id={ext} already exists. "
                        f"Existing ID: {existing}",
                        "context": {"objectWriteTraceId": [entry["objectWriteTraceId"]]},
                    }
                )
                continue
            rid = str(next(self._ids))
            self.records[rid] = props
            self.creates += 1
            if ext:
                self.by_unique[ext] = rid
            results.append(
                {"id": rid, "properties": props, "objectWriteTraceId": entry["objectWriteTraceId"]}
            )
        status = 207 if errors else 201
        return json_response(status, {"status": "COMPLETE", "results": results, "errors": errors})

    def _update(self, body: dict[str, Any]) -> HttpResponse:
        results, errors = [], []
        for entry in body["inputs"]:
            rid = str(entry["id"])
            if rid not in self.records:
                errors.append(
                    {
                        "status": "error",
                        "category": "OBJECT_NOT_FOUND",
                        "message": f"Object {rid} not found",
                        "context": {"ids": [rid]},
                    }
                )
                continue
            self.records[rid].update(entry["properties"])
            results.append({"id": rid, "properties": self.records[rid]})
        status = 207 if errors else 200
        return json_response(status, {"status": "COMPLETE", "results": results, "errors": errors})

    def _read(self, body: dict[str, Any]) -> HttpResponse:
        idp = body.get("idProperty")
        results, missing = [], []
        for entry in body["inputs"]:
            value = str(entry["id"])
            rid = self.by_unique.get(value) if idp else value
            if rid is None or rid not in self.records or rid in self.hidden:
                missing.append(value)
                continue
            results.append({"id": rid, "properties": self.records[rid]})
        errors = []
        if missing:
            errors.append(
                {
                    "status": "error",
                    "category": "OBJECT_NOT_FOUND",
                    "message": "Could not get some TICKET objects",
                    "context": {"ids": missing},
                }
            )
        status = 207 if errors else 200
        return json_response(status, {"status": "COMPLETE", "results": results, "errors": errors})


def tickets(n: int, *, unique: bool = True) -> list[dict[str, str]]:
    rows = []
    for i in range(1, n + 1):
        row = {"subject": f"Ticket {i}", "hs_pipeline_stage": "1"}
        if unique:
            row["external_id"] = f"ext-{i}"
        rows.append(row)
    return rows
