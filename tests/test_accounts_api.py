"""Accounts, sessions, CSRF, API keys and isolation — tested as an attacker would."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select

from onebox.core.db import utcnow
from onebox.users.models import AuditEvent
from tests.accounts import PASSWORD, SignedIn, make_account, sign_in
from tests.conftest import AppUnderTest

pytestmark = pytest.mark.anyio


@pytest.fixture
async def second_client(api: AppUnderTest) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=api.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://onebox.test") as client:
        yield client


def state(api: AppUnderTest):  # type: ignore[no-untyped-def]
    return api.app.state.onebox


async def test_single_user_mode_ends_with_the_first_account(api: AppUnderTest) -> None:
    mine = (await api.client.post("/api/conversations", json={"title": "before"})).json()
    assert (await api.client.get("/api/auth/me")).json()["mode"] == "anonymous"

    await make_account(state(api), "first@example.com")
    locked = await api.client.get("/api/conversations")
    assert locked.status_code == 401
    assert locked.json()["error"]["type"] == "authentication_error"

    # The first account takes over what was written in single-user mode.
    await sign_in(api.client, "first@example.com")
    listed = (await api.client.get("/api/conversations")).json()["items"]
    assert [c["id"] for c in listed] == [mine["id"]]
    me = (await api.client.get("/api/auth/me")).json()
    assert me["mode"] == "session"
    assert me["user"]["role"] == "admin"


async def test_session_cookie_flags(api: AppUnderTest) -> None:
    await make_account(state(api), "a@example.com")
    response = await api.client.post(
        "/api/auth/login", json={"email": "a@example.com", "password": PASSWORD}
    )
    cookies = response.headers.get_list("set-cookie")
    session_cookie = next(c for c in cookies if c.startswith("onebox_session="))
    assert "HttpOnly" in session_cookie
    assert "samesite=lax" in session_cookie.lower()
    assert "Secure" not in session_cookie  # plain http here
    csrf_cookie = next(c for c in cookies if c.startswith("onebox_csrf="))
    assert "HttpOnly" not in csrf_cookie


async def test_secure_cookie_over_tls(api: AppUnderTest) -> None:
    await make_account(state(api), "tls@example.com")
    transport = httpx.ASGITransport(app=api.app)
    async with httpx.AsyncClient(transport=transport, base_url="https://onebox.test") as client:
        response = await client.post(
            "/api/auth/login", json={"email": "tls@example.com", "password": PASSWORD}
        )
    assert all("Secure" in c for c in response.headers.get_list("set-cookie"))


async def test_wrong_password_and_unknown_email_look_the_same(api: AppUnderTest) -> None:
    await make_account(state(api), "b@example.com")
    wrong = await api.client.post(
        "/api/auth/login", json={"email": "b@example.com", "password": "nope nope nope"}
    )
    unknown = await api.client.post(
        "/api/auth/login", json={"email": "ghost@example.com", "password": "nope nope nope"}
    )
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json()["error"]["message"] == unknown.json()["error"]["message"]


async def test_repeated_failures_lock_the_account(api: AppUnderTest) -> None:
    await make_account(state(api), "c@example.com")
    for _ in range(5):
        await api.client.post(
            "/api/auth/login", json={"email": "c@example.com", "password": "wrong password!"}
        )
    locked = await api.client.post(
        "/api/auth/login", json={"email": "c@example.com", "password": PASSWORD}
    )
    assert locked.status_code == 401
    assert locked.json()["error"]["code"] == "account_locked"
    async with state(api).sessionmaker() as session:
        rows = (await session.execute(select(AuditEvent))).scalars().all()
    denied = [r for r in rows if r.action == "login" and r.outcome == "denied"]
    assert len(denied) >= 5


async def test_csrf_is_required_for_cookie_writes(api: AppUnderTest) -> None:
    await make_account(state(api), "d@example.com")
    signed = await sign_in(api.client, "d@example.com")
    without = await api.client.post("/api/conversations", json={})
    assert without.status_code == 403
    assert without.json()["error"]["code"] == "csrf_failed"
    wrong = await api.client.post("/api/conversations", json={}, headers={"x-csrf-token": "x"})
    assert wrong.status_code == 403
    right = await api.client.post("/api/conversations", json={}, headers=signed.headers())
    assert right.status_code == 201
    assert (await api.client.get("/api/conversations")).status_code == 200  # reads need none


async def test_tampered_and_ended_sessions(api: AppUnderTest) -> None:
    await make_account(state(api), "e@example.com")
    signed = await sign_in(api.client, "e@example.com")
    cookie = api.client.cookies["onebox_session"]
    api.client.cookies.set("onebox_session", cookie[:-1] + ("0" if cookie[-1] != "0" else "1"))
    assert (await api.client.get("/api/auth/me")).status_code == 401
    api.client.cookies.set("onebox_session", cookie)
    assert (await api.client.get("/api/auth/me")).status_code == 200
    assert (await api.client.post("/api/auth/logout", headers=signed.headers())).status_code == 204
    api.client.cookies.set("onebox_session", cookie)  # replaying the old cookie
    assert (await api.client.get("/api/auth/me")).status_code == 401
    stale = await api.client.post("/api/auth/logout")
    assert stale.status_code == 204
    assert any("onebox_session=" in c for c in stale.headers.get_list("set-cookie"))
    assert (await api.client.get("/api/models")).status_code == 401


async def _setup_two_users(
    api: AppUnderTest, other: httpx.AsyncClient
) -> tuple[SignedIn, SignedIn]:
    await make_account(state(api), "owner@example.com")  # first: admin
    await make_account(state(api), "intruder@example.com")
    return await sign_in(api.client, "owner@example.com"), await sign_in(
        other, "intruder@example.com"
    )


async def test_every_resource_is_private(
    api: AppUnderTest, second_client: httpx.AsyncClient
) -> None:
    owner, intruder = await _setup_two_users(api, second_client)
    conversation = (
        await api.client.post(
            "/api/conversations", json={"title": "secret"}, headers=owner.headers()
        )
    ).json()
    reply = await api.client.post(
        f"/api/conversations/{conversation['id']}/messages",
        json={"content": "private words"}, headers=owner.headers(),
    )  # fmt: skip
    assert reply.status_code == 200
    key = (await api.client.post("/api/keys", json={"name": "k"}, headers=owner.headers())).json()

    cid, h = conversation["id"], intruder.headers()
    attempts = [
        ("GET", f"/api/conversations/{cid}", None),
        ("PATCH", f"/api/conversations/{cid}", {"title": "pwned"}),
        ("DELETE", f"/api/conversations/{cid}", None),
        ("POST", f"/api/conversations/{cid}/messages", {"content": "hi"}),
        ("POST", f"/api/conversations/{cid}/stop", None),
        ("DELETE", f"/api/keys/{key['key']['id']}", None),
    ]
    for method, path, body in attempts:
        response = await second_client.request(method, path, json=body, headers=h)
        assert response.status_code == 404, (method, path, response.text)
    assert (await second_client.get("/api/conversations")).json()["items"] == []
    assert (await second_client.get("/api/keys")).json() == []
    usage = (await second_client.get("/api/usage")).json()
    assert usage["rows"] == []
    for path in ("/api/admin/users", "/api/admin/keys", "/api/admin/usage", "/api/admin/audit"):
        assert (await second_client.get(path)).status_code == 403
    # And the owner's data is untouched.
    kept = (await api.client.get(f"/api/conversations/{cid}")).json()
    assert kept["title"] == "secret"
    assert next(m["content"] for m in kept["messages"]) == "private words"


async def test_api_keys_work_once_shown_and_die_when_revoked(api: AppUnderTest) -> None:
    await make_account(state(api), "f@example.com")
    signed = await sign_in(api.client, "f@example.com")
    created = (
        await api.client.post("/api/keys", json={"name": "script"}, headers=signed.headers())
    ).json()
    secret = created["secret"]
    assert secret.startswith("obx_")
    assert created["key"]["prefix"] == secret[:12]
    listed = (await api.client.get("/api/keys")).json()
    assert "secret" not in listed[0]
    assert secret not in str(listed)

    bearer = {"authorization": f"Bearer {secret}"}
    transport = httpx.ASGITransport(app=api.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://onebox.test") as bare:
        assert (await bare.get("/v1/models", headers=bearer)).status_code == 200
        assert (await bare.get("/api/conversations", headers=bearer)).status_code == 200
        await api.client.delete(f"/api/keys/{created['key']['id']}", headers=signed.headers())
        revoked = await bare.get("/v1/models", headers=bearer)
        assert revoked.status_code == 401
        assert revoked.json()["error"]["code"] == "invalid_api_key"
        for bad in ("obx_forged", "Bearer", "", "sk-1234"):
            response = await bare.get("/v1/models", headers={"authorization": f"Bearer {bad}"})
            assert response.status_code == 401
        assert (await bare.get("/v1/models", headers={"authorization": secret})).status_code == 401
        assert (await bare.get("/v1/models")).status_code == 401  # accounts mode: keys only


async def test_expired_keys_are_refused(api: AppUnderTest) -> None:
    await make_account(state(api), "g@example.com")
    signed = await sign_in(api.client, "g@example.com")
    past = await api.client.post(
        "/api/keys", json={"expires_at": (utcnow() - timedelta(days=1)).isoformat()},
        headers=signed.headers(),
    )  # fmt: skip
    assert past.status_code == 400
    soon = (
        await api.client.post(
            "/api/keys",
            json={"expires_at": (utcnow() + timedelta(seconds=1)).isoformat()},
            headers=signed.headers(),
        )
    ).json()
    await asyncio.sleep(1.2)
    transport = httpx.ASGITransport(app=api.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://onebox.test") as bare:
        response = await bare.get(
            "/v1/models", headers={"authorization": f"Bearer {soon['secret']}"}
        )
    assert response.status_code == 401


async def test_key_model_allow_list(api: AppUnderTest) -> None:
    await make_account(state(api), "h@example.com")
    signed = await sign_in(api.client, "h@example.com")
    allowed = (
        await api.client.post("/api/keys", json={"models": ["other"]}, headers=signed.headers())
    ).json()["secret"]
    transport = httpx.ASGITransport(app=api.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://onebox.test") as bare:
        response = await bare.post(
            "/v1/chat/completions",
            json={"model": "fake-echo", "messages": [{"role": "user", "content": "hi"}]},
            headers={"authorization": f"Bearer {allowed}"},
        )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "model_not_allowed"


async def test_disabling_a_user_ends_sessions_and_keys(
    api: AppUnderTest, second_client: httpx.AsyncClient
) -> None:
    admin, user = await _setup_two_users(api, second_client)
    secret = (await second_client.post("/api/keys", json={}, headers=user.headers())).json()[
        "secret"
    ]
    users = (await api.client.get("/api/admin/users")).json()
    target = next(u for u in users if u["email"] == "intruder@example.com")
    patched = await api.client.patch(
        f"/api/admin/users/{target['id']}", json={"is_active": False}, headers=admin.headers()
    )
    assert patched.json()["is_active"] is False
    assert (await second_client.get("/api/conversations")).status_code == 401
    transport = httpx.ASGITransport(app=api.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://onebox.test") as bare:
        response = await bare.get("/v1/models", headers={"authorization": f"Bearer {secret}"})
    assert response.status_code == 401
    yourself = await api.client.patch(
        f"/api/admin/users/{(await api.client.get('/api/auth/me')).json()['user']['id']}",
        json={"is_active": False}, headers=admin.headers(),
    )  # fmt: skip
    assert yourself.status_code == 400
    actions = [e["action"] for e in (await api.client.get("/api/admin/audit")).json()]
    assert "admin_user_update" in actions
    assert "key_create" in actions


async def test_password_change_ends_other_sessions(
    api: AppUnderTest, second_client: httpx.AsyncClient
) -> None:
    await make_account(state(api), "i@example.com")
    here = await sign_in(api.client, "i@example.com")
    await sign_in(second_client, "i@example.com")
    short = await api.client.post(
        "/api/auth/password", json={"current_password": PASSWORD, "new_password": "short"},
        headers=here.headers(),
    )  # fmt: skip
    assert short.status_code == 400
    wrong = await api.client.post(
        "/api/auth/password", json={"current_password": "not it at all", "new_password": "x" * 12},
        headers=here.headers(),
    )  # fmt: skip
    assert wrong.status_code == 400
    assert wrong.json()["error"]["code"] == "wrong_password"
    changed = await api.client.post(
        "/api/auth/password", json={"current_password": PASSWORD, "new_password": "a much newer one"},
        headers=here.headers(),
    )  # fmt: skip
    assert changed.status_code == 204
    assert (await api.client.get("/api/auth/me")).status_code == 200
    assert (await second_client.get("/api/auth/me")).status_code == 401
    assert (
        await second_client.post(
            "/api/auth/login", json={"email": "i@example.com", "password": PASSWORD}
        )
    ).status_code == 401


async def test_signup_is_closed_by_default(api: AppUnderTest) -> None:
    response = await api.client.post(
        "/api/auth/signup", json={"email": "new@example.com", "password": "long enough pw"}
    )
    assert response.status_code == 403
    assert (await api.client.get("/api/auth/config")).json()["signup_open"] is False


async def test_header_injection_goes_nowhere(api: AppUnderTest) -> None:
    response = await api.client.post(
        "/api/auth/login",
        json={"email": "x@example.com\r\nSet-Cookie: pwned=1", "password": "whatever1234"},
    )
    assert response.status_code == 401
    assert "pwned" not in str(response.headers)
    created = await api.client.post("/api/conversations", json={"title": "a\r\nX-Evil: 1"})
    assert created.status_code == 201
    assert "x-evil" not in {k.lower() for k in created.headers}


async def test_admin_token_acts_as_admin(api: AppUnderTest) -> None:
    await make_account(state(api), "root@example.com")
    state(api).settings.api_token = __import__("pydantic").SecretStr("t" * 32)
    try:
        transport = httpx.ASGITransport(app=api.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://onebox.test") as bare:
            headers = {"authorization": "Bearer " + "t" * 32}
            assert (await bare.get("/api/admin/users", headers=headers)).status_code == 200
            assert (await bare.get("/v1/models", headers=headers)).status_code == 200
    finally:
        state(api).settings.api_token = None


async def test_widget_keys_are_bound_to_their_origins(api: AppUnderTest) -> None:
    await make_account(state(api), "shop@example.com")
    signed = await sign_in(api.client, "shop@example.com")
    no_origin = await api.client.post(
        "/api/keys", json={"kind": "widget"}, headers=signed.headers()
    )
    assert no_origin.status_code == 400
    for origin in (
        "javascript:alert(1)",
        "https://<img src=x onerror=alert(1)>",
        "http://a b c",
        "https://x.example/path",
        "https://u:p@x.example",
    ):
        bad_origin = await api.client.post(
            "/api/keys", json={"kind": "widget", "allowed_origins": [origin]},
            headers=signed.headers(),
        )  # fmt: skip
        assert bad_origin.status_code == 400, origin
    widget = (
        await api.client.post(
            "/api/keys",
            json={"kind": "widget", "allowed_origins": ["https://Shop.Example/"]},
            headers=signed.headers(),
        )
    ).json()
    secret = widget["secret"]
    assert secret.startswith("obw_")
    transport = httpx.ASGITransport(app=api.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://onebox.test") as bare:
        auth = {"authorization": f"Bearer {secret}"}
        good = await bare.get("/v1/models", headers={**auth, "origin": "https://shop.example"})
        assert good.status_code == 200
        assert good.headers["access-control-allow-origin"] == "https://shop.example"
        evil = await bare.get("/v1/models", headers={**auth, "origin": "https://evil.example"})
        assert evil.status_code == 403
        assert "access-control-allow-origin" not in evil.headers
        assert (await bare.get("/v1/models", headers=auth)).status_code == 403
        preflight = await bare.options(
            "/v1/chat/completions",
            headers={"origin": "https://shop.example", "access-control-request-method": "POST"},
        )
        assert preflight.status_code == 204
        assert "authorization" in preflight.headers["access-control-allow-headers"]
        assert (await bare.get("/api/conversations", headers=auth)).status_code == 403


async def test_security_headers(api: AppUnderTest) -> None:
    page = await api.client.get("/")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp
    assert "'unsafe-inline'" not in csp
    assert "frame-ancestors 'none'" in csp
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["referrer-policy"] == "no-referrer"
    api_response = await api.client.get("/api/conversations")
    assert api_response.headers["x-content-type-options"] == "nosniff"
    assert "default-src 'none'" in api_response.headers["content-security-policy"]
