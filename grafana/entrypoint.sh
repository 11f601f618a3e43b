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
# Production's data source (grafana/optional/amp.yml) only when its workspace is set: Grafana
# reads one provisioning directory, so this one is the stack's plus that file.
if [ -n "${GRAFANA_AMP_WORKSPACE_ID:-}" ]; then
  for name in GRAFANA_AMP_REGION GRAFANA_AMP_ACCESS_KEY_ID GRAFANA_AMP_SECRET_ACCESS_KEY; do
    eval "value=\${$name:-}"
    if [ -z "$value" ]; then
      echo "grafana: GRAFANA_AMP_WORKSPACE_ID is set but $name is not (README.md, \"Watching production\")" >&2
      exit 2
    fi
  done
  provisioning=${GRAFANA_PROVISIONING_DIR:-/tmp/grafana-provisioning}
  rm -rf "$provisioning"
  mkdir -p "$provisioning"
  cp -R "${GRAFANA_STACK_PROVISIONING:-/etc/grafana/provisioning}/." "$provisioning/"
  cp "${GRAFANA_OPTIONAL:-/etc/grafana/optional}/amp.yml" "$provisioning/datasources/amp.yml"
  GF_PATHS_PROVISIONING=$provisioning
  # The Prometheus data source signs requests with SigV4 only when this is on.
  GF_AUTH_SIGV4_AUTH_ENABLED=true
  export GF_PATHS_PROVISIONING GF_AUTH_SIGV4_AUTH_ENABLED
  echo "grafana: provisioning the AMP workspace $GRAFANA_AMP_WORKSPACE_ID as a data source" >&2
fi
# GRAFANA_START exists for the tests; in the image it is Grafana's own /run.sh.
exec "${GRAFANA_START:-/run.sh}" "$@"
