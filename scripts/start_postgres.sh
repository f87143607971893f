#!/usr/bin/env bash
# Starts the local PostgreSQL cluster that the PostgreSQL record store tests use (Debian's
# packaging: pg_ctlcluster), creating what is missing, and prints the admin URL to pass as
# FIELDCAP_TEST_POSTGRES_URL:
#
#   export FIELDCAP_TEST_POSTGRES_URL=$(bash scripts/start_postgres.sh)
#   FIELDCAP_REQUIRE_POSTGRES=1 cargo test -p fieldcap-server --test record_store_contract --test pg_schema_upgrade
#
# Idempotent. Needs root (CI's fresh Debian machine): installs the `postgresql` package if it is
# missing. The role `fieldcap_test` (LOGIN, CREATEDB, no superuser) and its password are for
# local tests only; the cluster listens on 127.0.0.1 only (Debian's default). Everything but the
# URL goes to stderr.
set -euo pipefail

ROLE=fieldcap_test
PASSWORD=${FIELDCAP_TEST_POSTGRES_PASSWORD:-fieldcap-local-test}
CLUSTER=main

if ! command -v pg_ctlcluster >/dev/null 2>&1 || ! ls -d /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
    echo "installing postgresql (apt-get)" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq postgresql >&2
fi

# The newest installed major version (15 on Debian bookworm).
VERSION=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
if ! pg_lsclusters -h | awk '{print $1" "$2}' | grep -qx "$VERSION $CLUSTER"; then
    echo "creating cluster $VERSION/$CLUSTER" >&2
    pg_createcluster "$VERSION" "$CLUSTER" >&2
fi
if ! pg_ctlcluster "$VERSION" "$CLUSTER" status >/dev/null 2>&1; then
    echo "starting cluster $VERSION/$CLUSTER" >&2
    pg_ctlcluster --skip-systemctl-redirect "$VERSION" "$CLUSTER" start >&2
fi
PORT=$(pg_lsclusters -h | awk -v v="$VERSION" -v c="$CLUSTER" '$1 == v && $2 == c {print $3}')

psql_admin() {
    runuser -u postgres -- psql -p "$PORT" -v ON_ERROR_STOP=1 -qAtX "$@"
}
for _ in $(seq 1 30); do
    if psql_admin -c 'SELECT 1' >/dev/null 2>&1; then break; fi
    sleep 1
done
if [ "$(psql_admin -c "SELECT count(*) FROM pg_roles WHERE rolname = '$ROLE'")" = 0 ]; then
    echo "creating role $ROLE" >&2
    psql_admin -c "CREATE ROLE $ROLE LOGIN CREATEDB"
fi
# Set every time, so a changed FIELDCAP_TEST_POSTGRES_PASSWORD takes effect.
psql_admin -c "ALTER ROLE $ROLE LOGIN CREATEDB PASSWORD '$PASSWORD'"

echo "postgres://$ROLE:$PASSWORD@127.0.0.1:$PORT/postgres"
