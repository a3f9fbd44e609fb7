# Sourced by scripts/setup.sh. The model-upload dispatcher's npm packages (see the script).
bash "$root/scripts/dispatcher-deps.sh"

# The dispatcher's proxy test runs a real forward proxy.
need_packages tinyproxy
