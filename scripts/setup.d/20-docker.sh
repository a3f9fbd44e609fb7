# shellcheck shell=bash
# dockerd (Debian docker.io) builds and runs the test images, the Distribution registry
# (docker-registry) stores what the build-push tests push, debootstrap makes the base image.
# Sourced by scripts/setup.sh, which defines need_packages and log.
need_packages docker.io docker-registry debootstrap

if ! docker info >/dev/null 2>&1; then
  log "Starting dockerd"
  # No init system on a bare machine: run the daemon in the background, logging to a file.
  mkdir -p /var/log
  nohup dockerd >/var/log/dockerd.log 2>&1 &
  for _ in $(seq 1 60); do
    docker info >/dev/null 2>&1 && break
    sleep 1
  done
  if ! docker info >/dev/null 2>&1; then
    echo "dockerd did not become ready within 60 s; see /var/log/dockerd.log" >&2
    tail -n 20 /var/log/dockerd.log >&2 || true
    exit 1
  fi
fi
