// Recovery kit `{{name}}`, in C: the app is up while a GET of `url` answers
// 200 and, if `expect_body` is set, the body contains it.
//
// Memory, as the canonical ABI and the generated bindings have it:
// - `ctx` of an export is owned by the kit: free it before returning.
// - Whatever an export returns is freed by the bindings (post-return) with
//   free(), so every string and list in it must come from malloc
//   (`recovery_kit_string_dup`, never `recovery_kit_string_set`).
// - Arguments of an import are only borrowed (`_string_set` is fine); what
//   it returns is the kit's to free.
// No stdio: the component then imports nothing from WASI but what the
// preview1 adapter itself needs.

#include <stdlib.h>
#include <string.h>

#include "recovery_kit.h"

#define KIT_VERSION "0.1.0"
#define TIMEOUT_MS 2000
#define MAX_BODY (64 * 1024)

typedef recovery_kit_string_t str_t;

// The value of setting `key`, or NULL when absent (borrowed from `ctx`).
static const str_t *setting(const exports_medic_kit_kit_context_t *ctx, const char *key) {
    size_t n = strlen(key);
    for (size_t i = 0; i < ctx->settings.len; i++) {
        const medic_kit_types_setting_t *s = &ctx->settings.ptr[i];
        if (s->key.len == n && memcmp(s->key.ptr, key, n) == 0) return &s->value;
    }
    return NULL;
}

static bool contains(const recovery_kit_list_u8_t *hay, const str_t *needle) {
    if (needle->len == 0) return true;
    for (size_t i = 0; i + needle->len <= hay->len; i++) {
        if (memcmp(hay->ptr + i, needle->ptr, needle->len) == 0) return true;
    }
    return false;
}

// A malloc'd message built from pieces; `len` is ignored when `p` is NULL.
typedef struct {
    const void *p;
    size_t len;
} piece_t;
#define LIT(s) ((piece_t){s, sizeof(s) - 1})
#define STR(s) ((piece_t){(s)->ptr, (s)->len})

static str_t join(size_t n, const piece_t *parts) {
    size_t len = 0;
    for (size_t i = 0; i < n; i++) len += parts[i].len;
    str_t out = {malloc(len ? len : 1), len};
    if (!out.ptr) abort();
    for (size_t i = 0, at = 0; i < n; at += parts[i].len, i++) {
        memcpy(out.ptr + at, parts[i].p, parts[i].len);
    }
    return out;
}

// Decimal text of `v` in `buf` (at least 5 bytes), as a piece.
static piece_t u16_piece(uint16_t v, char buf[static 5]) {
    size_t at = 5;
    do {
        buf[--at] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return (piece_t){buf + at, 5 - at};
}

static void setting_doc(medic_kit_types_setting_doc_t *d, const char *key, bool required,
                        const char *doc) {
    recovery_kit_string_dup(&d->key, key);
    d->required = required;
    d->default_.is_some = false;
    recovery_kit_string_dup(&d->doc, doc);
}

void exports_medic_kit_kit_describe(exports_medic_kit_kit_kit_info_t *ret) {
    recovery_kit_string_dup(&ret->name, "{{name}}");
    recovery_kit_string_dup(&ret->version, KIT_VERSION);
    recovery_kit_string_dup(&ret->summary,
                            "Checks that a GET of a URL answers 200 with the expected body.");

    medic_kit_types_setting_doc_t *docs = malloc(2 * sizeof *docs);
    medic_kit_types_capability_t *wants = malloc(sizeof *wants);
    if (!docs || !wants) abort();
    setting_doc(&docs[0], "url", true,
                "The URL to GET, `http://host:port/path`; its `host:port` must be in "
                "`[grants] connect`.");
    setting_doc(&docs[1], "expect_body", false,
                "Text the first 64 KiB of the body must contain.");
    ret->settings = (medic_kit_types_list_setting_doc_t){docs, 2};

    wants[0].tag = MEDIC_KIT_TYPES_CAPABILITY_CONNECT;
    recovery_kit_string_dup(&wants[0].val.connect, "host:port of url");
    ret->wants = (medic_kit_types_list_capability_t){wants, 1};
}

void exports_medic_kit_kit_check(exports_medic_kit_kit_context_t *ctx,
                                 exports_medic_kit_kit_health_t *ret) {
    ret->tag = MEDIC_KIT_TYPES_HEALTH_FAILED;
    str_t *reason = &ret->val.failed;

    const str_t *url = setting(ctx, "url");
    const str_t *expect = setting(ctx, "expect_body");
    if (!url) {
        *reason = join(1, &LIT("missing required setting `url`"));
        goto out;
    }

    medic_kit_host_http_response_t resp;
    str_t err;
    if (!medic_kit_host_http_get((str_t *)url, TIMEOUT_MS, MAX_BODY, &resp, &err)) {
        *reason = join(4, (piece_t[]){LIT("GET "), STR(url), LIT(": "), STR(&err)});
        recovery_kit_string_free(&err);
        goto out;
    }
    char num[5];
    if (resp.status != 200) {
        *reason = join(3, (piece_t[]){LIT("status "), u16_piece(resp.status, num),
                                      LIT(", expected 200")});
    } else if (expect && !contains(&resp.body, expect)) {
        *reason = join(4, (piece_t[]){LIT("body lacks \""), STR(expect), LIT("\""),
                                      resp.truncated ? LIT(" (in its first 64 KiB)") : LIT("")});
    } else {
        ret->tag = MEDIC_KIT_TYPES_HEALTH_HEALTHY;
    }
    medic_kit_host_http_response_free(&resp);
out:
    exports_medic_kit_kit_context_free(ctx);
}

bool exports_medic_kit_kit_recover(exports_medic_kit_kit_context_t *ctx,
                                   exports_medic_kit_kit_next_step_t *ret, str_t *err) {
    (void)err;
    exports_medic_kit_kit_context_free(ctx);
    ret->tag = MEDIC_KIT_TYPES_NEXT_STEP_RESTART_APP;
    return true;
}
