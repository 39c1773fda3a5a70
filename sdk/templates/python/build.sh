#!/bin/sh
# Builds {{name}}.wasm with componentize-py (pip install componentize-py==0.25.1;
# the CPython runtime comes inside its wheel, nothing else is downloaded).
set -eu
cd "$(dirname "$0")"
componentize-py -d wit -w recovery-kit componentize app -o "{{name}}.wasm"
