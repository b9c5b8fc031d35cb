"""Imports every ORM model so that metadata is complete for migrations and create_all."""

from __future__ import annotations


def import_all_models() -> None:
    import onebox.chat.models
    import onebox.documents.models
    import onebox.jobs.models
    import onebox.presets.models
    import onebox.sharing.models
    import onebox.usage.models
    import onebox.users.models
    import onebox.widget.models  # noqa: F401
