# shellcheck shell=bash
# The local base image every test image (and the example app) derives from: Debian bookworm
# with python3, flask, waitress (the example app's WSGI server), numpy and PIL. No public registry is reachable, so it is built here with
# debootstrap from Debian's package mirror and imported into dockerd, once.
# Sourced by scripts/setup.sh after 20-docker.sh.
BASE_IMAGE="${BASE_IMAGE:-ai-app-base:bookworm}"
BASE_PACKAGES="python3,python3-flask,python3-waitress,python3-numpy,python3-pil"
# The package list is kept as a label, so an image built from an older list is rebuilt.
built_with="$(docker image inspect -f '{{ index .Config.Labels "ai-app-base.packages" }}' "$BASE_IMAGE" 2>/dev/null || true)"
if [ "$built_with" != "$BASE_PACKAGES" ]; then
  log "Building $BASE_IMAGE with debootstrap (takes a few minutes, once)"
  rootfs="$(mktemp -d /var/tmp/ai-app-base.XXXXXX)"
  debootstrap --variant=minbase --include="$BASE_PACKAGES" \
    bookworm "$rootfs" http://deb.debian.org/debian >/var/tmp/ai-app-base-debootstrap.log 2>&1 || {
    echo "debootstrap failed; see /var/tmp/ai-app-base-debootstrap.log" >&2
    tail -n 20 /var/tmp/ai-app-base-debootstrap.log >&2
    rm -rf "$rootfs"
    exit 1
  }
  # Package caches and lists are not needed at run time; leaving them out keeps the image small.
  chroot "$rootfs" apt-get clean
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/log/*.log \
    "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/*
  tar -C "$rootfs" -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["/bin/bash"]' \
    --change "LABEL ai-app-base.packages=$BASE_PACKAGES" \
    - "$BASE_IMAGE" >/dev/null
  rm -rf "$rootfs"
  log "Built $BASE_IMAGE ($(docker image inspect -f '{{.Size}}' "$BASE_IMAGE") bytes)"
fi
