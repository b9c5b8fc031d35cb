"""Imports every ORM model so that metadata is complete for migrations and create_all."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection


def import_all_models() -> None:
    import onebox.chat.models
    import onebox.documents.models
    import onebox.jobs.models
    import onebox.presets.models
    import onebox.sharing.models
    import onebox.usage.models
    import onebox.users.models
    import onebox.widget.models  # noqa: F401


def modelled(name: str | None, kind: str, _parent: object) -> bool:
    """Whether a schema object is the models' to describe: the search tables, columns and
    indexes are the migrations' own, so schema comparisons leave them out."""
    from onebox.chat.search import is_search_object

    return not is_search_object(name, kind)


def schema_differences(connection: Connection) -> list[Any]:
    """What Alembic's autogenerate finds between the live schema and the models."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from onebox.core.db import Base

    import_all_models()
    context = MigrationContext.configure(connection, opts={"include_name": modelled})
    return list(compare_metadata(context, Base.metadata))
