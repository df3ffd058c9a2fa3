#!/usr/bin/env bash
# Installs what Duet needs to build and test on Debian 12: the C toolchain pieces the crates
# build with (cmake for libopus, nasm for openh264's assembly, libclang for bindgen, ALSA
# headers, WebRTC's audio processing library for echo cancellation) and the real parts the
# tests run: nftables and iproute2 for lossy network namespaces, PulseAudio (null sinks as
# sound cards), Debian's Chromium as the other peer, coturn as the TURN server, and Xvfb,
# ImageMagick, tesseract (OCR) and xdotool (keyboard) for the window tests.
# Idempotent; uses sudo when not root. Rust itself comes from rustup (1.95 or newer).
set -euo pipefail

packages=(build-essential pkg-config cmake nasm libclang-dev libasound2-dev libwebrtc-audio-processing-dev nftables iproute2 util-linux procps
  pulseaudio pulseaudio-utils chromium coturn openssl curl xvfb xauth imagemagick tesseract-ocr xdotool libgl1-mesa-dri libegl1 libxkbcommon-x11-0)

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  sudo="sudo"
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo is missing: install Rust 1.95 or newer with rustup, then run this again" >&2
  exit 1
fi
# The version Cargo.toml's rust-version asks for (egui 0.37 needs it).
rust_version=$(rustc --version | awk '{print $2}')
if [ "$(printf '%s\n1.95.0\n' "$rust_version" | sort -V | head -1)" != "1.95.0" ]; then
  echo "setup: Rust $rust_version is too old: Duet needs 1.95 or newer (rustup update stable)" >&2
  exit 1
fi
for component in rustfmt clippy; do
  if ! cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1; then
    rustup component add "$component"
  fi
done
