"""``GET /api/bootstrap``: everything the web UI's first screen needs, in one request.

Each part is produced by the same function as its own endpoint (``/api/auth/config``,
``/api/auth/me``, ``/api/models``, ``/api/conversations``, ``/api/collections``), so the
two ways can never disagree. Without a sign-in the answer carries only ``config`` (and
``me`` null): the page shows the sign-in screen without a 401 round trip.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel

from onebox.chat.routes import conversation_page
from onebox.chat.schemas import ConversationOut
from onebox.core.errors import APIError
from onebox.core.pagination import Page
from onebox.deps import SessionDep, StateDep, get_principal
from onebox.documents.schemas import CollectionOut
from onebox.documents.service import DocumentService
from onebox.llm.routes import ModelOut, models_for
from onebox.users.routes import auth_config_out, me_out
from onebox.users.schemas import AuthConfigOut, MeOut

# The sidebar's page size (web/static/sidebar.js); "Load more" asks /api/conversations.
FIRST_PAGE = 50

router = APIRouter(prefix="/api", tags=["accounts"])


class BootstrapOut(BaseModel):
    config: AuthConfigOut
    me: MeOut | None
    models: list[ModelOut]
    conversations: Page[ConversationOut] | None
    collections: list[CollectionOut]


@router.get("/bootstrap", response_model=BootstrapOut)
async def bootstrap(request: Request, session: SessionDep, state: StateDep) -> BootstrapOut:
    """The sign-in configuration, who is calling, the models they may use, the first page
    of their conversations and their collections."""
    config = await auth_config_out(request, state)
    try:
        principal = await get_principal(request, state)
    except APIError as exc:
        if exc.status_code != 401:
            raise
        return BootstrapOut(config=config, me=None, models=[], conversations=None, collections=[])
    return BootstrapOut(
        config=config,
        me=await me_out(principal, session),
        models=models_for(state, principal),
        conversations=await conversation_page(
            session, principal.user_id, limit=FIRST_PAGE, offset=0
        ),
        collections=await DocumentService(session, state.settings).list_collections(
            principal.user_id
        ),
    )
