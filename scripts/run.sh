#!/usr/bin/env bash
# The README's first command, after set-up: builds Duet and opens its window when there is a
# display; without one (a server, CI, a container) makes a 10-second call between two Duet
# processes on 127.0.0.1 instead and prints what each side received and how late.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -n "${DISPLAY:-}" ] || [ -n "${WAYLAND_DISPLAY:-}" ]; then
  exec cargo run --locked -- "$@"
fi
echo "run: no display here, so no window: making a loopback call instead (duet call --loopback)" >&2
exec cargo run --locked -- call --loopback "$@"
