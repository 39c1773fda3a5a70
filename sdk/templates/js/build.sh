#!/bin/sh
# Builds {{name}}.wasm with componentize-js (from npm; needs node).
set -eu
cd "$(dirname "$0")"
npm install --no-audit --no-fund --loglevel=error
node build.mjs
