#!/usr/bin/env bash
# Runs a command with the local test stack's environment: a TLS certificate (made once, kept in
# .local/certs) that Node trusts through NODE_EXTRA_CA_CERTS, which Node reads only at start-up,
# so it is set here, before any test, demo or benchmark process starts. It names the loopback
# addresses the stack listens on (127.0.0.2 is the registry's data endpoint, another host) and
# the production host names the proxy tests reach the stack by.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
certs="$root/.local/certs"
names="IP:127.0.0.1,IP:127.0.0.2,DNS:localhost"
names+=",DNS:*.blob.core.windows.net,DNS:login.microsoftonline.com,DNS:management.azure.com"
names+=",DNS:*.azurecr.io,DNS:*.eastus.data.azurecr.io,DNS:*.hcp.eastus.azmk8s.io"
names+=",DNS:sts.us-east-1.amazonaws.com,DNS:*.s3.us-east-1.amazonaws.com"
if [ ! -s "$certs/localhost.crt" ] || [ ! -s "$certs/localhost.key" ] ||
  ! openssl x509 -in "$certs/localhost.crt" -noout -ext subjectAltName 2>/dev/null |
  grep -q 'azmk8s'; then
  mkdir -p "$certs"
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=127.0.0.1" \
    -addext "subjectAltName=$names" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -keyout "$certs/localhost.key" -out "$certs/localhost.crt" >/dev/null 2>&1
fi
export NODE_EXTRA_CA_CERTS="$certs/localhost.crt"
export LOCAL_TLS_KEY="$certs/localhost.key"
export PATH="$root/node_modules/.bin:$PATH"
cd "$root"
exec "$@"
