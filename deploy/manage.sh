#!/usr/bin/env bash
# Run a manage.py command on the deployed site, with its production environment and as its user:
#   /srv/chat/deploy/manage.sh createsuperuser
#   /srv/chat/deploy/manage.sh export_assistant handbook /var/backups/chat/handbook.zip
# CHAT_ENV_FILE (default /etc/chat/chat.env) and CHAT_USER (default chat; empty: the current user) override.
set -euo pipefail
cd "$(dirname "$0")/.."
set -a
# shellcheck disable=SC1090
. "${CHAT_ENV_FILE:-/etc/chat/chat.env}"
set +a
user="${CHAT_USER-chat}"
if [ -n "$user" ] && [ "$(id -un)" != "$user" ]; then
    exec runuser -u "$user" -- .venv/bin/python manage.py "$@"
fi
exec .venv/bin/python manage.py "$@"
