#!/bin/sh
# nginx container: nginx.conf is the repository's nginx.conf.example with
# this deployment's domain, database and log targets filled in at start,
# so the password never lands in the image.  The modules are loaded from
# the package's modules-enabled snippets.
set -eu

: "${TUNNEL_DOMAIN:?set TUNNEL_DOMAIN in .env}"
: "${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD in .env}"
: "${SSH_PORT:=2222}"

db="host=/run/postgresql dbname=${POSTGRES_DB:-ngx_tunnel} user=${POSTGRES_USER:-tunnel} password=${POSTGRES_PASSWORD} connect_timeout=3"

# load_module lines: the packaged snippets instead of absolute paths;
# logs to the container's stdout/stderr; IPv4 only inside the container
sed -e "s/tunnel\.example\.com/${TUNNEL_DOMAIN}/g" \
    -e "s|^load_module .*admin_module.so;|include /etc/nginx/modules-enabled/*.conf;|" \
    -e "/^load_module /d" \
    -e "s|error_log /var/log/nginx/error.log|error_log /dev/stderr|" \
    -e "s|access_log /var/log/nginx/tunnel.access.log|access_log /dev/stdout|" \
    -e "/listen \[::\]/d" \
    -e "s|tunnel_ssh_port 2222;|tunnel_ssh_port ${SSH_PORT};|" \
    -e "s|tunnel_admin_ssh_port 2222;|tunnel_admin_ssh_port ${SSH_PORT};|" \
    -e "s|tunnel_admin_database .*|tunnel_admin_database \"${db}\";|" \
    /etc/nginx/nginx.conf.example >/etc/nginx/nginx.conf

exec "$@"
