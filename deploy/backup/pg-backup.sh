#!/bin/sh
# Dump Onebox's PostgreSQL database to one file (custom format: compressed, restorable
# table by table, portable across PostgreSQL major versions upwards).
#   deploy/backup/pg-backup.sh 'postgresql://onebox:PW@host:5432/onebox' onebox-$(date +%F).dump
# Compose: docker compose exec -T postgres pg_dump -U onebox -d onebox --format=custom > FILE
set -eu
[ $# -eq 2 ] || { echo "usage: $0 DATABASE_URL OUTPUT_FILE" >&2; exit 2; }
url=$(printf %s "$1" | sed 's#^postgresql+asyncpg://#postgresql://#')
exec pg_dump --dbname="$url" --format=custom --no-owner --no-privileges --file="$2"
