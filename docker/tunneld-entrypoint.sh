#!/bin/sh
# tunneld container: own the volumes, apply the database migrations
# (idempotent), then run tunneld as user tunneld with www-data as a
# supplementary group (the socket directory's group, shared with nginx).
set -eu

chown tunneld:tunneld /var/lib/tunneld
chmod 0700 /var/lib/tunneld
chown tunneld:www-data /run/tunneld
chmod 0750 /run/tunneld

: "${DATABASE_URL:?set DATABASE_URL (compose.yaml builds it from .env)}"
: "${REDIS_URL:?set REDIS_URL}"

# PostgreSQL may still be starting even after its health check on a
# first run: a few tries
tries=0
until setpriv --reuid=tunneld --regid=tunneld --clear-groups \
        tunnelctl migrate; do
    tries=$((tries + 1))
    [ "$tries" -lt 10 ] || exit 1
    sleep 2
done

exec setpriv --reuid=tunneld --regid=tunneld --groups=www-data \
    tunneld --config /etc/tunneld/tunneld.conf "$@"
