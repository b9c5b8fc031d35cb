#!/bin/sh
# Secrets arrive as files (compose/Kubernetes secrets under /run/secrets), never baked into
# the image or passed on a command line: for every ONEBOX_<NAME>_FILE=/path, export
# ONEBOX_<NAME> with the file's content. ONEBOX_DATABASE_PASSWORD_FILE is special: the
# password is URL-encoded into ONEBOX_DATABASE_URL (written without one).
set -eu
for var in $(env | sed -n 's/^\(ONEBOX_[A-Z0-9_]*\)_FILE=.*/\1/p'); do
    [ "$var" = ONEBOX_DATABASE_PASSWORD ] && continue
    [ "$var" = ONEBOX_MODELS ] && continue  # ONEBOX_MODELS_FILE is a setting, not a secret
    file=$(printenv "${var}_FILE")
    [ -r "$file" ] || { echo "entrypoint: cannot read ${var}_FILE=$file" >&2; exit 1; }
    export "$var=$(cat "$file")"
    unset "${var}_FILE"
done
if [ -n "${ONEBOX_DATABASE_PASSWORD_FILE:-}" ] && [ -n "${ONEBOX_DATABASE_URL:-}" ]; then
    ONEBOX_DATABASE_URL=$(python - <<'PY'
import os, urllib.parse
url = urllib.parse.urlsplit(os.environ["ONEBOX_DATABASE_URL"])
with open(os.environ["ONEBOX_DATABASE_PASSWORD_FILE"], encoding="utf-8") as fh:
    password = urllib.parse.quote(fh.read().strip(), safe="")
host = url.netloc.rsplit("@", 1)[-1]
user = url.username or "onebox"
print(urllib.parse.urlunsplit(url._replace(netloc=f"{user}:{password}@{host}")))
PY
)
    export ONEBOX_DATABASE_URL
    unset ONEBOX_DATABASE_PASSWORD_FILE
fi
exec onebox "$@"
