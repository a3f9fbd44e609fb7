# shellcheck shell=bash
# Sourced by scripts/setup.sh. Debian's squid, the real forward proxy of the proxy tests
# (test/integration/proxy.test.ts): each test run starts its own squid with a generated
# configuration on a free port (test/support/proxied-network.ts), so the system service the
# package may start (or, without an init system, may not) is never used.
need_packages squid
