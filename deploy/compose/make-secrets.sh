#!/bin/sh
# Writes one random secret per file under ./secrets/, keeping any that exist. The folder is
# 0700 (only root on the host); the files are 0644 because compose bind-mounts them as they
# are and the containers read them as their own non-root users.
# hf_token stays empty unless you put a Hugging Face token in it (gated models on vLLM).
set -eu
cd "$(dirname "$0")"
umask 077
mkdir -p secrets
for name in secret_key api_token metrics_token postgres_password engine_api_key grafana_admin_password; do
    [ -s "secrets/$name" ] || openssl rand -base64 48 | tr -d '\n/+=' > "secrets/$name"
done
[ -e secrets/hf_token ] || : > secrets/hf_token
chmod 0700 secrets
chmod 0644 secrets/*
echo "secrets ready in $(pwd)/secrets"
