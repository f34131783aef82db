#!/usr/bin/env bash
# Fetches XGrammar's source (the sdist on PyPI, pinned and sha256-checked) into the cache and
# prints the source directory on stdout. inferd builds XGrammar's C++ core (cpp/*.cc, no
# Python bindings) as a static library inside its own build (cmake/xgrammar.cmake).
# Idempotent: does nothing when the directory is already there.
set -euo pipefail
CACHE=${INFERD_CACHE_DIR:-$HOME/.cache/inferd}
VERSION=0.2.9
SHA=87b466bca2475e29bb0323abc62c6c33cbcbcff47e5fb800a3e2099ac9620b90
DEST="$CACHE/xgrammar-$VERSION"
if [ ! -f "$DEST/cpp/grammar_matcher.cc" ]; then
  mkdir -p "$CACHE"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  # `pip download` of an sdist runs its build backend; the index's JSON API gives the file.
  # The index pip uses (PIP_INDEX_URL, e.g. a mirror), else PyPI; its simple API in JSON.
  INDEX=${PIP_INDEX_URL:-https://pypi.org/simple}
  url=$(curl -fsSL --retry 3 -H "Accept: application/vnd.pypi.simple.v1+json" "${INDEX%/}/xgrammar/" |
    python3 -c "import json, sys
for f in json.load(sys.stdin)['files']:
    if f['filename'] == 'xgrammar-$VERSION.tar.gz': print(f['url'])")
  if [ -z "$url" ]; then
    echo "fetch-xgrammar.sh: xgrammar-$VERSION.tar.gz not found on PyPI" >&2
    exit 1
  fi
  curl -fsSL --retry 3 -o "$tmp/xgrammar.tar.gz" "$url"
  echo "$SHA  $tmp/xgrammar.tar.gz" | sha256sum -c --quiet - >&2
  tar xzf "$tmp/xgrammar.tar.gz" -C "$tmp"
  rm -rf "$DEST.part"
  mv "$tmp/xgrammar-$VERSION" "$DEST.part"
  mv "$DEST.part" "$DEST"
fi
echo "$DEST"
