#!/usr/bin/env bash
# Renders docs/diagrams/*.dot to docs/*.svg with graphviz (apt-get install graphviz).
# The SVGs are committed; run this after editing a .dot file.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v dot >/dev/null || { echo "docs-diagrams: needs graphviz: apt-get install graphviz" >&2; exit 1; }
for src in docs/diagrams/*.dot; do
    out="docs/$(basename "${src%.dot}").svg"
    dot -Tsvg "$src" -o "$out"
    echo "rendered $out"
done
