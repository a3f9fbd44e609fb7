#!/usr/bin/env bash
# Runs a command with the local test stack's environment: a TLS certificate for 127.0.0.1
# (made once, kept in .local/certs) that Node trusts through NODE_EXTRA_CA_CERTS, which Node
# reads only at start-up, so it is set here, before any test, demo or benchmark process starts.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
certs="$root/.local/certs"
if [ ! -s "$certs/localhost.crt" ] || [ ! -s "$certs/localhost.key" ]; then
  mkdir -p "$certs"
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=127.0.0.1" \
    -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -keyout "$certs/localhost.key" -out "$certs/localhost.crt" >/dev/null 2>&1
fi
export NODE_EXTRA_CA_CERTS="$certs/localhost.crt"
export LOCAL_TLS_KEY="$certs/localhost.key"
export PATH="$root/node_modules/.bin:$PATH"
cd "$root"
exec "$@"
