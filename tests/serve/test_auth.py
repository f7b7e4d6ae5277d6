"""Tokens: hashed at rest, read vs admin scopes, 401 without a valid token and 403 without the scope."""

from __future__ import annotations

import json
import os
import stat

import httpx
import pytest
from conftest import failure_table

from shopfloor.serve.auth import TokenBook, TokenError, create_token, list_tokens, revoke_token

pytest_plugins = ["rest_service"]

ROW = failure_table(1, seed=7).drop(columns="failure").to_dict(orient="records")


def test_tokens_are_shown_once_and_kept_only_as_hashes(tmp_path):
    token = create_token(tmp_path, "mes", "read")
    assert token.startswith("sf_") and len(token) > 40
    text = (tmp_path / "tokens.json").read_text()
    assert token not in text and token[3:] not in text
    assert stat.S_IMODE(os.stat(tmp_path / "tokens.json").st_mode) == 0o600
    assert [(t["name"], t["scope"]) for t in list_tokens(tmp_path)] == [("mes", "read")]
    assert "sha256" not in list_tokens(tmp_path)[0]
    book = TokenBook(tmp_path, recheck=0)
    assert book.scope_of(token) == "read" and book.scope_of(token + "x") is None and book.scope_of("") is None


def test_token_names_scopes_and_revocation_are_checked(tmp_path):
    create_token(tmp_path, "mes", "admin")
    with pytest.raises(TokenError, match="exists already"):
        create_token(tmp_path, "mes", "read")
    with pytest.raises(TokenError, match="not a scope"):
        create_token(tmp_path, "other", "write")
    with pytest.raises(TokenError, match="not a valid token name"):
        create_token(tmp_path, "../evil", "read")
    with pytest.raises(TokenError, match="does not exist"):
        create_token(tmp_path / "nowhere", "mes", "read")
    revoke_token(tmp_path, "mes")
    assert list_tokens(tmp_path) == []
    with pytest.raises(TokenError, match="no token named 'mes'"):
        revoke_token(tmp_path, "mes")


def test_a_damaged_token_file_lets_nobody_in(tmp_path):
    token = create_token(tmp_path, "mes", "read")
    (tmp_path / "tokens.json").write_text("{not json")
    assert TokenBook(tmp_path, recheck=0).scope_of(token) is None
    with pytest.raises(TokenError, match="not valid JSON"):
        list_tokens(tmp_path)


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer sf_wrong"}, {"Authorization": "Basic bWVzOnB3"},
                                     {"Authorization": "Bearer"}])
def test_api_routes_refuse_requests_without_a_valid_token(service, headers):
    for method, path, body in [("GET", "/api/models", None), ("GET", "/api/models/failure", None),
                               ("POST", "/api/models/failure/predict", {"rows": ROW}),
                               ("POST", "/api/models/failure/promote", {"version": 1}),
                               ("GET", "/api/models/reactor/recommendation", None), ("GET", "/api/tokens", None)]:
        answer = httpx.request(method, service.url + path, json=body, headers=headers)
        assert answer.status_code == 401, (path, answer.text)
        assert answer.headers["www-authenticate"] == "Bearer"
        assert "token" in answer.json()["detail"]
    upload = httpx.post(service.url + "/api/models/anomaly/inspect", headers=headers,
                        files={"image": ("a.png", b"\x89PNG\r\n\x1a\n", "image/png")})
    assert upload.status_code == 401


def test_read_tokens_cannot_change_the_registry_but_admin_tokens_can(service):
    reader, admin = service.client(service.read), service.client(service.admin)
    for path, body in [("/api/models/failure/promote", {"version": 1}), ("/api/models/failure/rollback", None)]:
        refused = reader.post(path, json=body)
        assert refused.status_code == 403 and "admin" in refused.json()["detail"]
    assert reader.get("/api/tokens").status_code == 403
    listed = admin.get("/api/tokens").json()
    assert {t["name"]: t["scope"] for t in listed} == {"mes": "read", "quality-lead": "admin"}
    assert all(service.read not in json.dumps(t) and service.admin not in json.dumps(t) for t in listed)
    assert admin.post("/api/models/failure/predict", json={"rows": ROW}).status_code == 200  # admin implies read


def test_a_revoked_token_stops_working_and_the_cookie_works_like_the_header(service):
    token = create_token(service.root, "shift-terminal", "read")
    assert httpx.get(service.url + "/api/models", cookies={"shopfloor_token": token}).status_code == 200
    revoke_token(service.root, "shift-terminal")
    assert httpx.get(service.url + "/api/models", cookies={"shopfloor_token": token}).status_code == 401
    assert httpx.get(service.url + "/api/models", headers={"Authorization": f"Bearer {token}"}).status_code == 401


def test_without_any_token_the_answer_says_how_to_make_one(tmp_path):
    from rest_service import Service

    from shopfloor.registry import Registry

    Registry(tmp_path / "models", create=True)
    with Service(tmp_path / "models") as empty:
        answer = httpx.get(empty.url + "/api/models")
    assert answer.status_code == 401
    assert "shopfloor token create" in answer.json()["detail"]


def test_an_upload_without_a_token_is_refused_before_its_body_is_read(service):
    """401, not the 413 that reading this 4 MiB body would earn (the image limit here is 64 KiB): the token gate
    answers before anything of the body is read."""

    def body():
        for _ in range(64):
            yield b"\0" * 65_536

    headers = {"Content-Type": "multipart/form-data; boundary=x"}
    with httpx.Client(base_url=service.url, timeout=30) as anonymous:
        response = anonymous.post("/api/models/anomaly/inspect", content=body(), headers=headers)
    assert response.status_code == 401 and "API token" in response.json()["detail"]
