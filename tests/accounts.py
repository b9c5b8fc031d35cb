"""Helpers for tests that need accounts: create them through the real services."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from onebox.state import AppState
from onebox.users.service import AccountService

PASSWORD = "correct horse battery"


async def make_account(state: AppState, email: str, *, admin: bool = False) -> str:
    async with state.sessionmaker() as session:
        user = await AccountService(session).create_account(email, PASSWORD, is_admin=admin)
        await session.commit()
        user_id = user.id
    state.auth.forget_accounts_state()
    return user_id


@dataclass
class SignedIn:
    client: httpx.AsyncClient
    csrf: str

    def headers(self) -> dict[str, str]:
        return {"x-csrf-token": self.csrf}


async def sign_in(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> SignedIn:
    response = await client.post("/api/auth/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    return SignedIn(client, response.json()["csrf_token"])
