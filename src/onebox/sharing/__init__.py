"""Read-only share links for a conversation, opened without signing in at ``/s/{token}``."""
