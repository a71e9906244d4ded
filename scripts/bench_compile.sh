#!/bin/sh
# Policy compiler benchmark: prints a table of parse/validate and compile
# times and image sizes for 10 to 100k rules over 10 to 10k segments.
# Release build; set CARGO_TARGET_DIR to share or separate build caches.
set -eu
cd "$(dirname "$0")/.."
exec cargo bench --bench bench_compile "$@"
