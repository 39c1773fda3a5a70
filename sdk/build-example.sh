#!/bin/sh
# Writes the example kit of LANG (rust, python, js, c) with `medic kit new`
# into DIR/LANG-http and builds it with the template's own build.sh; what a
# language's toolchain needs from its package registry is installed under
# TOOLS (componentize-py into a venv; the js template runs npm itself).
# MEDIC names the medic binary (default: `medic` on PATH). The tests and
# `cargo xtask dist` both build the examples through this one script.
#
# usage: sh sdk/build-example.sh LANG DIR TOOLS
set -eu
lang=$1 dir=$2 tools=$3
MEDIC=${MEDIC:-medic}
name="$lang-http"
rm -rf "${dir:?}/$name"
mkdir -p "$dir" "$tools"
"$MEDIC" kit new --lang "$lang" "$name" --dir "$dir" >/dev/null
if [ "$lang" = python ]; then
  if [ ! -x "$tools/python/bin/componentize-py" ]; then
    python3 -m venv "$tools/python"
    "$tools/python/bin/pip" install --quiet componentize-py==0.25.1
  fi
  PATH="$tools/python/bin:$PATH"
fi
export MEDIC PATH
sh "$dir/$name/build.sh"
