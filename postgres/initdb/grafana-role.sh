#!/bin/sh
# Run by the postgres image once, when its data volume is new (/docker-entrypoint-initdb.d):
# the role Grafana's PostgreSQL data source logs in as, which may read the prediction log and
# change nothing. The tables do not exist yet (mlapi's migrations create them, as
# POSTGRES_USER), so SELECT is granted on each as it is created, by default privileges.
set -eu
: "${POSTGRES_GRAFANA_PASSWORD:?is not set}"
psql --no-psqlrc --set=ON_ERROR_STOP=1 --username="$POSTGRES_USER" --dbname="$POSTGRES_DB" \
  --set=owner="$POSTGRES_USER" --set=password="$POSTGRES_GRAFANA_PASSWORD" <<'SQL'
CREATE ROLE grafana LOGIN PASSWORD :'password';
-- A second guard, should a grant ever give it more.
ALTER ROLE grafana SET default_transaction_read_only = on;
GRANT USAGE ON SCHEMA public TO grafana;
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA public GRANT SELECT ON TABLES TO grafana;
SQL
