"""`/admin/models/...`: admin keys only (the gate), changes queued in a real registry, OpenAI-shaped errors."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient

from appliance.config.keys import hash_key
from appliance.config.secrets import ApiKeyRecord, Role
from appliance.registry.requests import ChangeRequests
from appliance.registry.states import Environment, Status
from appliance.registry.store import RegistryStore, RevisionKey
from appliance.serve.admin_models import ADMIN_MODEL_ROUTES, AdminModels
from appliance.serve.audit import AuditLog
from appliance.serve.errors import ApiError
from appliance.serve.gate import Gate, GateSettings
from appliance.serve.keystore import KeyStore
from tests.unit.serve.test_gate import Downstream, RecordingMetrics, call

T0 = datetime(2026, 12, 5, 8, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Info:
    id: str


@dataclass(frozen=True)
class Config:
    registry_url: str | None
    models: tuple[Info, ...] = (Info("tiny"),)


class Host(AdminModels):
    def __init__(self, config: Config) -> None:
        self._config = config


def client(registry_url: str | None) -> TestClient:
    app = FastAPI()
    host = Host(Config(registry_url))
    for name, (method, path) in ADMIN_MODEL_ROUTES.items():
        app.add_api_route(path, getattr(host, name), methods=[method])

    async def api_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return JSONResponse(status_code=exc.status, content=json.loads(exc.body()), headers=dict(exc.headers))

    app.add_exception_handler(ApiError, api_error)
    return TestClient(app)


@pytest.fixture
def store(tmp_path: Path) -> RegistryStore:
    store = RegistryStore.open(f"sqlite:///{tmp_path}/registry.db")
    store.migrate()
    entry = store.record(RevisionKey("tiny", Environment.PRODUCTION, "/m/tiny", "", "m1", "e1"), reason="serve", now=T0)
    store.transition(entry.id, Status.LOADING, reason="serve", now=T0)
    store.transition(entry.id, Status.READY, reason="running", now=T0)
    return store


def url(store: RegistryStore) -> str:
    return f"sqlite:///{store.location.path}"


def test_a_change_is_queued_and_answered_202_with_where_to_poll(store: RegistryStore) -> None:
    api = client(url(store))
    queued = api.post("/admin/models/deploy", json={"environment": "staging", "models_yaml": "models: []\n"})
    assert queued.status_code == 202
    request = queued.json()["request"]
    assert (request["kind"], request["environment"], request["status"]) == ("deploy", "staging", "pending")
    assert queued.json()["poll"] == f"/admin/models/requests/{request['id']}"
    assert api.post("/admin/models/tiny/rollback", json={"to": 1}).status_code == 202
    assert api.post("/admin/models/tiny/promote").status_code == 202
    claimed = [ChangeRequests(store).claim(now=T0) for _ in range(3)]
    assert [(r.kind, r.model_id, r.payload) for r in claimed if r] == [
        ("deploy", "", {"models_yaml": "models: []\n"}),
        ("rollback", "tiny", {"to": 1}),
        ("promote", "tiny", {}),
    ]
    polled = api.get(f"/admin/models/requests/{request['id']}")
    assert polled.status_code == 200 and polled.json()["request"]["status"] == "running"


def test_disable_enable_and_history(store: RegistryStore) -> None:
    api = client(url(store))
    assert (
        api.post("/admin/models/tiny/disable", json={"reason": "bad answers"}).json()["entry"]["status"] == "disabled"
    )
    again = api.post("/admin/models/tiny/disable")
    assert again.status_code == 409 and again.json()["error"]["code"] == "transition_refused"
    assert api.post("/admin/models/tiny/enable").json()["entry"]["status"] == "ready"
    history = api.get("/admin/models/tiny/history").json()["history"]
    assert [e["reason"] for e in history][-2:] == [
        "disabled by an admin key over the API: bad answers",
        "enabled by an admin key over the API",
    ]


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "code"),
    [
        ("post", "/admin/models/nope/promote", None, 404, "model_not_found"),
        ("post", "/admin/models/tiny/rollback", {"to": "latest"}, 400, "invalid_parameter"),
        ("post", "/admin/models/deploy", {"environment": "qa", "models_yaml": "x"}, 400, "invalid_parameter"),
        ("post", "/admin/models/deploy", {}, 400, "invalid_parameter"),
        ("post", "/admin/models/tiny/disable", [1], 400, "invalid_body"),
        ("get", "/admin/models/requests/99", None, 404, "request_not_found"),
    ],
)
def test_bad_input_gets_an_openai_error(
    store: RegistryStore, method: str, path: str, body: object, status: int, code: str
) -> None:
    response = getattr(client(url(store)), method)(path, **({"json": body} if body is not None else {}))
    assert response.status_code == status and response.json()["error"]["code"] == code


def test_no_registry_is_503_with_retry_after_and_no_internals(tmp_path: Path) -> None:
    (tmp_path / "registry.db").mkdir()  # a directory where the file should be: SQLite cannot open it
    response = client(f"sqlite:///{tmp_path}/registry.db").post("/admin/models/tiny/promote")
    assert response.status_code == 503 and response.headers["retry-after"] == "5"
    assert str(tmp_path) not in response.text
    assert client(None).get("/admin/models/tiny/history").status_code == 503


def test_the_gate_lets_only_admin_keys_through(tmp_path: Path) -> None:
    keys = KeyStore(
        (
            ApiKeyRecord("alice", Role.USER, ("tiny",), hash_key("sk-user")),
            ApiKeyRecord("root", Role.ADMIN, (), hash_key("sk-admin")),
        )
    )
    downstream = Downstream()
    gate = Gate(
        downstream, GateSettings(True, 1000, {"tiny": 16}), keys, AuditLog(tmp_path / "a.log"), RecordingMetrics()
    )
    for name, (method, path) in ADMIN_MODEL_ROUTES.items():
        concrete = path.replace("{model}", "tiny").replace("{request_id}", "1")
        assert call(gate, concrete, b"{}", {"authorization": "Bearer sk-user"}, method=method)[0] == 403, name
        assert call(gate, concrete, b"{}", {}, method=method)[0] == 401, name
        assert call(gate, concrete, b"{}", {"authorization": "Bearer sk-admin"}, method=method)[0] == 200, name
    assert len(downstream.seen) == len(ADMIN_MODEL_ROUTES)


def test_a_removed_model_keeps_its_history_and_a_change_to_it_says_how_to_serve_it_again(
    store: RegistryStore,
) -> None:
    entry = store.record(
        RevisionKey("gone", Environment.PRODUCTION, "/m/gone", "", "m2", "e2"), reason="deploy", now=T0
    )
    store.transition(entry.id, Status.LOADING, reason="deploy", now=T0)
    store.transition(entry.id, Status.READY, reason="running", now=T0)
    store.retire(entry.id, reason="deploy: removed (no longer in models.yaml)", now=T0)
    api = client(url(store))  # serves "tiny" only
    history = api.get("/admin/models/gone/history")
    assert history.status_code == 200
    assert [e["reason"] for e in history.json()["history"]][-1] == "deploy: removed (no longer in models.yaml)"
    for action in ("rollback", "promote", "disable"):
        refused = api.post(f"/admin/models/gone/{action}")
        assert refused.status_code == 404 and refused.json()["error"]["code"] == "model_not_found"
        assert "add it to models.yaml and deploy" in refused.json()["error"]["message"]
    never = api.get("/admin/models/never/history")
    assert never.status_code == 404 and "does not exist" in never.json()["error"]["message"]
