"""The dashboard's browser safety: no change from a foreign page, security headers, sign-out by POST, docs offline."""

from __future__ import annotations

import re

import httpx

pytest_plugins = ["rest_service"]


def cookie_client(service, token: str) -> httpx.Client:
    """A browser's requests: the sign-in cookie, no Authorization header."""
    return httpx.Client(base_url=service.url, timeout=30, cookies={"shopfloor_token": token}, follow_redirects=False)


def test_a_page_on_another_port_cannot_roll_a_model_back_with_the_cookie(service):
    """SameSite=strict does not stop a page on another port of the same host: its Origin must be refused."""
    service.registry.add("press-11", service.models.folders["failure"])
    service.registry.add("press-11", service.models.folders["failure-b"])
    port = int(service.url.rsplit(":", 1)[1])
    with cookie_client(service, service.admin) as browser:
        for headers in ({"Origin": f"http://127.0.0.1:{port + 1}"}, {"Origin": "null"},
                        {"Referer": f"http://evil.example:{port}/page"}, {}):
            refused = browser.post("/api/models/press-11/rollback", headers=headers)
            assert refused.status_code == 403, (headers, refused.text)
            assert "another page" in refused.json()["detail"] or "no Origin or Referer" in refused.json()["detail"]
        assert service.registry.live_version("press-11") == 2  # nothing rolled back
        own = browser.post("/api/models/press-11/rollback", headers={"Origin": service.url})
        assert own.status_code == 200 and own.json()["live"] == 1
        referred = browser.post("/api/models/press-11/rollback", headers={"Referer": service.url + "/models"})
        assert referred.status_code == 200 and referred.json()["live"] == 2
    bearer = service.client(service.admin).post("/api/models/press-11/rollback", headers={"Origin": "http://evil.example"})
    assert bearer.status_code == 200  # a program with a token is not a browser riding on a cookie


def test_signing_in_from_a_foreign_page_is_refused(service):
    answer = httpx.post(service.url + "/login", data={"token": service.read, "next": "/"},
                        headers={"Origin": "http://127.0.0.1:1"}, follow_redirects=False, timeout=30)
    assert answer.status_code == 403 and "shopfloor_token" not in answer.headers.get("set-cookie", "")


def test_sign_out_is_a_post_from_the_dashboard(service):
    with cookie_client(service, service.read) as browser:
        assert browser.get("/logout").status_code == 405  # a link or an image elsewhere cannot sign anyone out
        assert browser.post("/logout", headers={"Origin": "http://127.0.0.1:1"}).status_code == 403
        out = browser.post("/logout", headers={"Origin": service.url})
        assert out.status_code == 303 and out.headers["location"] == "/login"
        assert 'shopfloor_token=""' in out.headers["set-cookie"] or "Max-Age=0" in out.headers["set-cookie"]
        page = browser.get("/models")
        assert page.status_code == 200 and 'action="/logout"' in page.text and 'method="post"' in page.text


def test_every_answer_carries_the_security_headers(service):
    with cookie_client(service, service.read) as browser:
        answers = [browser.get("/models"), browser.get("/login"), browser.get("/static/dashboard.css"),
                   httpx.get(service.url + "/api/models", timeout=30), httpx.get(service.url + "/health", timeout=30),
                   browser.post("/api/models/failure/promote", json={"version": 1})]
    for answer in answers:
        headers = answer.headers
        assert headers["x-frame-options"] == "DENY", answer.url
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "same-origin"
        policy = headers["content-security-policy"]
        assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy and "script-src 'self';" in policy


def test_the_api_docs_need_no_internet(service):
    page = httpx.get(service.url + "/docs", timeout=30)
    assert page.status_code == 200
    assert not re.search(r"(src|href)=\"(https?:)?//", page.text), "a file from another host"
    assert "<script>" not in page.text  # no inline script: the policy allows none
    for url in re.findall(r"(?:src|href)=\"(/[^\"]+)\"", page.text):
        asset = httpx.get(service.url + url, timeout=30)
        assert asset.status_code == 200 and len(asset.content) > 100, url
    assert "SwaggerUIBundle" in httpx.get(service.url + "/docs/assets/swagger-ui-bundle.js", timeout=30).text
    assert httpx.get(service.url + "/docs/assets/..%2f..%2fsetup.py", timeout=30).status_code == 404
    assert httpx.get(service.url + "/redoc", timeout=30).status_code == 404  # ReDoc came from a CDN too


def test_promote_takes_only_a_json_number(service):
    admin = service.client(service.admin)
    for body in ('{"version": true}', '{"version": "1"}', '{"version": 1.0}'):
        refused = admin.post("/api/models/failure/promote", content=body, headers={"Content-Type": "application/json"})
        assert refused.status_code == 422 and "version" in refused.json()["detail"], body
