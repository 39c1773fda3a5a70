"""Recovery kit `{{name}}`: the app is up while a GET answers 200 with the expected body.

The GET is done by medic itself through the `host.http-get` import, which
checks the URL's host:port against the app's `[grants] connect`.
Build: componentize-py -d WIT_DIR -w recovery-kit componentize app -o {{name}}.wasm
"""

import json

from wit_world import exports
from wit_world.imports import host
from wit_world.imports.types import (
    Capability_Connect,
    Context,
    Health,
    Health_Failed,
    Health_Healthy,
    KitInfo,
    Level,
    NextStep,
    NextStep_RestartApp,
    SettingDoc,
)
from componentize_py_types import Err

VERSION = "0.1.0"
TIMEOUT_MS = 2000  # keep below the app's `timeout` (default 5 s): a hung server is then `failed`
MAX_BODY = 64 * 1024  # how much of the body is searched for `expect_body`


class CheckFailed(Exception):
    """Raised inside `probe`; its text becomes the `failed` reason."""


def setting(ctx: Context, key: str) -> str | None:
    """The value of `key` in the app's [settings], or None."""
    return next((s.value for s in ctx.settings if s.key == key), None)


def probe(ctx: Context) -> None:
    """Does the GET; raises CheckFailed with a reason the admin can act on."""
    url = setting(ctx, "url")
    if not url:
        raise CheckFailed("setting `url` is missing")
    expect_body = setting(ctx, "expect_body")

    try:
        # A `result<T, string>` import returns T, or raises Err(string).
        resp = host.http_get(url, TIMEOUT_MS, MAX_BODY)
    except Err as e:
        raise CheckFailed(f"GET {url}: {e.value}")

    if resp.status != 200:
        raise CheckFailed(f"status {resp.status}, expected 200")
    if expect_body is not None:
        body = resp.body.decode("utf-8", errors="replace")  # `list<u8>` arrives as bytes
        if expect_body not in body:
            within = " (in its first 64 KiB)" if resp.truncated else ""
            raise CheckFailed(f"body lacks {json.dumps(expect_body)}{within}")


class Kit(exports.Kit):
    """The exported `kit` interface; componentize-py finds it by this class name."""

    def describe(self) -> KitInfo:
        return KitInfo(
            name="{{name}}",
            version=VERSION,
            summary="Checks that a GET of a URL answers 200 with the expected body (Python).",
            settings=[
                SettingDoc("url", True, None,
                           "The URL to GET, http://host:port/path; its host:port must be in [grants] connect."),
                SettingDoc("expect_body", False, None,
                           "Text the first 64 KiB of the body must contain."),
            ],
            wants=[Capability_Connect("host:port of url")],
        )

    def check(self, ctx: Context) -> Health:
        try:
            probe(ctx)
        except CheckFailed as e:
            return Health_Failed(str(e))
        host.log(Level.DEBUG, f"{ctx.app}: GET answered as expected")
        return Health_Healthy()

    def recover(self, ctx: Context) -> NextStep:
        # No repair of our own: medic runs the app's `stop` and `start`.
        # To report a failed step instead, `raise Err("why")` (the WIT `err`).
        return NextStep_RestartApp()
