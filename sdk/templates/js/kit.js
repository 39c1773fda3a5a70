// Recovery kit `{{name}}`, in JavaScript: the app is up while a GET of `url`
// answers 200 and, if `expect_body` is set, the body contains it. The GET is
// done by medic (`host.http-get`), which checks the URL's host:port against
// the app's `[grants] connect`.
//
// medic calls the three functions of the exported `kit` object, each in a
// fresh instance. WIT in JS (componentize-js 0.23):
//   variant       { tag: 'failed', val: 'why' }, { tag: 'healthy' } (no val)
//   enum          a string: log('info', '...')
//   option<T>     the value or undefined
//   list<u8>      Uint8Array
//   result<T, string> of an import: returns T, or throws an Error whose
//                 .payload (and .message) is the host's text
//   recover's result<next-step, string>: return the next-step for ok;
//                 `throw 'why'` (a string, not an Error) for err
// Any Error that escapes check or recover traps the kit: a kit fault, which
// medic never counts as the app being down. `check` may be async.
import { httpGet } from 'medic:kit/host@0.1.3';

const TIMEOUT_MS = 2000; // keep below the app's `timeout`: a hung server is then `failed`
const MAX_BODY = 64 * 1024; // how much of the body is searched for `expect_body`

const setting = (ctx, key) => ctx.settings.findLast((s) => s.key === key)?.value;

// Does the GET; returns the reason the app is failed, or nothing.
function probe(ctx) {
  const url = setting(ctx, 'url');
  if (!url) return 'missing required setting `url`';
  let response;
  try {
    response = httpGet(url, TIMEOUT_MS, MAX_BODY);
  } catch (e) {
    return `GET ${url}: ${e.payload ?? e}`;
  }
  if (response.status !== 200) return `status ${response.status}, expected 200`;
  const expect = setting(ctx, 'expect_body');
  if (expect !== undefined && !new TextDecoder().decode(response.body).includes(expect)) {
    return `body lacks ${JSON.stringify(expect)}`;
  }
  return undefined;
}

export const kit = {
  describe() {
    return {
      name: '{{name}}',
      version: '0.1.0',
      summary: 'Checks that a GET of a URL answers 200 with the expected body.',
      settings: [
        { key: 'url', required: true, default: undefined,
          doc: 'The URL to GET, `http://host:port/path`; its `host:port` must be in `[grants] connect`.' },
        { key: 'expect_body', required: false, default: undefined,
          doc: 'Text the first 64 KiB of the body must contain.' },
      ],
      wants: [{ tag: 'connect', val: 'host:port of url' }],
    };
  },

  check(ctx) {
    const reason = probe(ctx);
    return reason === undefined ? { tag: 'healthy' } : { tag: 'failed', val: reason };
  },

  recover(_ctx) {
    // No repair of its own: medic runs the app's `stop` and `start`.
    return { tag: 'restart-app' };
  },
};
