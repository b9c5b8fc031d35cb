#!/bin/sh
# Restore a dump from pg-backup.sh into a database (created empty beforehand, or an existing
# Onebox database: its objects are dropped and recreated). One transaction: a failed restore
# leaves the target as it was.
#   deploy/backup/pg-restore.sh onebox-2026-01-01.dump 'postgresql://onebox:PW@host:5432/onebox'
# Compose: docker compose exec -T postgres pg_restore -U onebox -d onebox --clean --if-exists \
#            --no-owner --no-privileges --single-transaction < FILE
set -eu
[ $# -eq 2 ] || { echo "usage: $0 DUMP_FILE DATABASE_URL" >&2; exit 2; }
url=$(printf %s "$2" | sed 's#^postgresql+asyncpg://#postgresql://#')
exec pg_restore --dbname="$url" --clean --if-exists --no-owner --no-privileges \
    --single-transaction --exit-on-error "$1"
