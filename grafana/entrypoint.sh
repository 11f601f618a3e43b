#!/bin/sh
# Grafana's entrypoint in this stack: the admin password comes from GRAFANA_ADMIN_PASSWORD when
# it is set; otherwise one is generated on first start and kept on the data volume, so that
# `docker compose up` works on a fresh machine and the password is never Grafana's "admin".
# Read it with: docker compose exec grafana cat /var/lib/grafana/admin-password
set -eu
if [ -z "${GF_SECURITY_ADMIN_PASSWORD:-}" ]; then
  file="${GF_PATHS_DATA:-/var/lib/grafana}/admin-password"
  if [ ! -s "$file" ]; then
    (umask 077 && head -c 24 /dev/urandom | base64 | tr -d '/+=\n' >"$file")
    echo "grafana: no GRAFANA_ADMIN_PASSWORD given; generated one in $file" >&2
  fi
  GF_SECURITY_ADMIN_PASSWORD=$(cat "$file")
  export GF_SECURITY_ADMIN_PASSWORD
fi
# GRAFANA_START exists for the tests; in the image it is Grafana's own /run.sh.
exec "${GRAFANA_START:-/run.sh}" "$@"
