#!/bin/sh
# Builds {{name}}.wasm: clang makes a wasm32-wasi reactor core module from
# kit.c and the bindings `medic kit new` generated into bindings/, then
# `medic kit componentize` wraps it into a component (with the WASI
# preview1 adapter built into medic).
# Debian 12: apt install clang lld wasi-libc libclang-rt-14-dev-wasm32
set -eu
cd "$(dirname "$0")"
MEDIC="${MEDIC:-medic}"
${CC:-clang} --target=wasm32-wasi -mexec-model=reactor -std=c11 -Os -Wall -Wextra \
  -Wl,--strip-debug -I bindings \
  kit.c bindings/recovery_kit.c bindings/recovery_kit_component_type.o \
  -o "{{name}}.core.wasm"
"$MEDIC" kit componentize "{{name}}.core.wasm" -o "{{name}}.wasm"
