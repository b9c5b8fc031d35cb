"""Background jobs whose state lives in the database: one set of task functions run by an
in-process worker (embedded) or by Celery workers (production)."""
