//! What `host.http-send` takes from a kit and hands back: every string
//! capped, the method and headers checked, the secret turned into the
//! `Authorization` header by medic.

use bytes::Bytes;
use secrecy::ExposeSecret as _;

use super::bindings::{HttpAnswer, HttpAuth, HttpRequest, Setting};
use super::lean_http::{Answer, Outgoing, parse_target};
use super::secrets::AppSecrets;
use crate::config::SECRET_NAME_MAX;

/// The longest method a kit may send.
pub const METHOD_MAX: usize = 16;
/// The longest URL a kit may send.
pub const URL_MAX: usize = 2048;
/// The most headers a kit may send.
pub const HEADERS_MAX: usize = 32;
/// The longest header name a kit may send.
pub const HEADER_NAME_MAX: usize = 64;
/// The longest header value a kit may send.
pub const HEADER_VALUE_MAX: usize = 1024;
/// The largest body a kit may send.
pub const BODY_MAX: usize = 64 * 1024;

/// The request `request` asks for, or why it cannot go out as asked.
pub fn outgoing(request: &HttpRequest) -> Result<Outgoing, String> {
    let too_long = |what: &str, max: usize| format!("http-send: {what} longer than {max} bytes");
    if request.method.len() > METHOD_MAX {
        return Err(too_long("method", METHOD_MAX));
    }
    if request.url.len() > URL_MAX {
        return Err(too_long("URL", URL_MAX));
    }
    if request.headers.len() > HEADERS_MAX {
        return Err(format!("http-send: more than {HEADERS_MAX} headers"));
    }
    if request.body.len() > BODY_MAX {
        return Err(too_long("body", BODY_MAX));
    }
    let method = http::Method::from_bytes(request.method.as_bytes())
        .map_err(|_| format!("http-send: {:?} is not an HTTP method", request.method))?;
    let uri = parse_target(&request.url)?;
    let mut headers = http::HeaderMap::with_capacity(request.headers.len());
    for Setting { key, value } in &request.headers {
        if key.len() > HEADER_NAME_MAX || value.len() > HEADER_VALUE_MAX {
            return Err(format!(
                "http-send: header names are at most {HEADER_NAME_MAX} bytes, values {HEADER_VALUE_MAX}"
            ));
        }
        let name = http::HeaderName::from_bytes(key.as_bytes())
            .map_err(|_| format!("http-send: {key:?} is not a header name"))?;
        let value = http::HeaderValue::from_str(value)
            .map_err(|_| format!("http-send: the value of header {key} is not valid"))?;
        headers.append(name, value);
    }
    Ok(Outgoing {
        method,
        uri,
        headers,
        body: Bytes::copy_from_slice(&request.body),
    })
}

/// The `Authorization` header for `auth`, from the app's secrets; the
/// value is marked sensitive so that no log shows it.
pub fn authorization(auth: &HttpAuth, secrets: &AppSecrets) -> Result<http::HeaderValue, String> {
    let (scheme, name) = match auth {
        HttpAuth::Basic(name) => ("Basic", name),
        HttpAuth::Bearer(name) => ("Bearer", name),
    };
    if name.len() > SECRET_NAME_MAX {
        return Err(format!("secret names are at most {SECRET_NAME_MAX} bytes"));
    }
    let secret = secrets.get(name)?.expose_secret();
    let credential = match auth {
        HttpAuth::Basic(_) => {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD.encode(secret)
        }
        HttpAuth::Bearer(_) => secret.to_owned(),
    };
    let mut value = http::HeaderValue::try_from(format!("{scheme} {credential}"))
        .map_err(|_| format!("secret {name:?} cannot be sent in a header"))?;
    value.set_sensitive(true);
    Ok(value)
}

/// The answer as the kit receives it.
pub fn answer(answer: Answer) -> HttpAnswer {
    HttpAnswer {
        status: answer.status,
        headers: answer
            .headers
            .into_iter()
            .map(|(key, value)| Setting { key, value })
            .collect(),
        body: answer.body,
        truncated: answer.truncated,
        elapsed_ms: u32::try_from(answer.elapsed.as_millis()).unwrap_or(u32::MAX),
        certificate: answer.certificate,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn request(method: &str, url: &str, headers: &[(&str, &str)], body: usize) -> HttpRequest {
        HttpRequest {
            method: method.into(),
            url: url.into(),
            headers: headers
                .iter()
                .map(|(k, v)| Setting {
                    key: (*k).into(),
                    value: (*v).into(),
                })
                .collect(),
            body: vec![b'x'; body],
            auth: None,
            timeout_ms: 1000,
            max_body: 1024,
        }
    }

    #[test]
    fn what_a_kit_sends_is_capped_and_checked() {
        let ok = outgoing(&request(
            "POST",
            "https://h/x",
            &[("X-Api-Version", "2")],
            10,
        ))
        .unwrap();
        assert_eq!(ok.method, http::Method::POST);
        assert_eq!(ok.headers["x-api-version"], "2");
        let refused = |r: HttpRequest| outgoing(&r).unwrap_err();
        let long = "a".repeat(URL_MAX);
        for (bad, says) in [
            (
                request("GET", &format!("http://h/{long}"), &[], 0),
                "URL longer",
            ),
            (request("GE T", "http://h/", &[], 0), "not an HTTP method"),
            (
                request(&"G".repeat(17), "http://h/", &[], 0),
                "method longer",
            ),
            (
                request("POST", "http://h/", &[], BODY_MAX + 1),
                "body longer",
            ),
            (request("GET", "ftp://h/", &[], 0), "invalid URL"),
            (
                request("GET", "http://h/", &[("Bad Name", "v")], 0),
                "not a header name",
            ),
            (
                request("GET", "http://h/", &[("X", "a\r\nInjected: 1")], 0),
                "not valid",
            ),
            (
                request("GET", "http://h/", &[("X", &"v".repeat(1025))], 0),
                "at most",
            ),
        ] {
            let why = refused(bad);
            assert!(why.contains(says), "{why} lacks {says}");
        }
        let many: Vec<(&str, &str)> = vec![("X", "v"); HEADERS_MAX + 1];
        assert!(refused(request("GET", "http://h/", &many, 0)).contains("more than"));
    }

    #[test]
    fn a_secret_becomes_the_authorization_header_and_an_unknown_one_is_refused() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("login");
        std::fs::write(&file, "admin:s3cret\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let secrets = AppSecrets::read("web", &[("login".into(), file)]);
        let basic = authorization(&HttpAuth::Basic("login".into()), &secrets).unwrap();
        assert_eq!(basic, "Basic YWRtaW46czNjcmV0");
        assert!(basic.is_sensitive());
        let bearer = authorization(&HttpAuth::Bearer("login".into()), &secrets).unwrap();
        assert_eq!(bearer, "Bearer admin:s3cret");
        let unknown = authorization(&HttpAuth::Bearer("other".into()), &secrets).unwrap_err();
        assert!(unknown.contains("no secret \"other\""), "{unknown}");
        let long = authorization(&HttpAuth::Basic("n".repeat(65)), &secrets).unwrap_err();
        assert!(long.contains("at most 64"), "{long}");
    }
}
