# The real kubectl, to check the Kubernetes API server double against (test/integration/
# kubectl.test.ts). The action itself never uses it. Debian's kubernetes-client (kubectl 1.20)
# is installed; where another package already owns /usr/bin/kubectl (e.g. the Google Cloud
# SDK's kubectl), Debian's would conflict with it, so it is unpacked under .local instead and
# the test checks both.
if dpkg-query -W -f='${Status}' kubectl 2>/dev/null | grep -q 'install ok installed'; then
  if [ ! -x "$root/.local/kubernetes-client/usr/bin/kubectl" ]; then
    log "Unpacking Debian's kubernetes-client into .local (another package owns /usr/bin/kubectl)"
    kubectl_download="$(mktemp -d)"
    chmod 777 "$kubectl_download"
    if ! (cd "$kubectl_download" && apt-get download -qq kubernetes-client >/dev/null 2>&1); then
      apt-get update -qq
      (cd "$kubectl_download" && apt-get download -qq kubernetes-client >/dev/null 2>&1)
    fi
    mkdir -p "$root/.local/kubernetes-client"
    dpkg-deb -x "$kubectl_download"/kubernetes-client_*.deb "$root/.local/kubernetes-client"
    rm -rf "$kubectl_download"
  fi
else
  need_packages kubernetes-client
fi
