# Sourced by scripts/setup.sh. The model-upload dispatcher is its own npm package (what gets
# deployed to Azure Functions); its entry file imports @azure/functions, so the root type-check
# needs that package installed. npm ci only when node_modules is missing or older than the lock.
dispatcher="$root/examples/model-upload-dispatcher"
if [ ! -d "$dispatcher/node_modules" ] ||
  [ "$dispatcher/package-lock.json" -nt "$dispatcher/node_modules/.package-lock.json" ]; then
  log "npm ci in examples/model-upload-dispatcher"
  (cd "$dispatcher" && npm ci --no-audit --no-fund)
fi

# The dispatcher's proxy test runs a real forward proxy.
need_packages tinyproxy
