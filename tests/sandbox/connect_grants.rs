//! `[grants] connect` is no channel out of the sandbox: a kit resolves only
//! granted names (answered from what they resolved to when the app
//! loaded, without asking DNS), and an HTTP authority with user info
//! (`user@host`) is refused on both HTTP paths before any connection.

use std::sync::atomic::Ordering;

use medic::config::Grants;
use medic::sandbox::KitFault;

use super::{counting_http_server, degraded_text, misbehave};

fn connect_to(grants: &[String]) -> Grants {
    Grants {
        connect: grants.to_vec(),
        ..Grants::default()
    }
}

/// The name a hostile kit would leak a secret through, one DNS query away.
const EXFIL: &str = "exfil-secret.example";

#[tokio::test]
async fn a_kit_with_a_grant_cannot_look_up_an_ungranted_name() {
    let (port, accepted) = counting_http_server();
    let grants = connect_to(&[format!("127.0.0.1:{port}")]);
    let sandbox = misbehave();
    let address = format!("{EXFIL}:{port}");
    // Through wasi:sockets/ip-name-lookup directly, and through std's
    // connect by name, which looks the name up first.
    for settings in [
        [("mode", "lookup"), ("host", EXFIL)],
        [("mode", "connect"), ("address", &address)],
    ] {
        let result = sandbox.check(&grants, &settings).await;
        let denied = vec![format!("lookup {EXFIL}")];
        assert_eq!(result, Err(KitFault::Denied(denied)), "{settings:?}");
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 0, "nothing connected");
}

/// A hostile kit that looks up a 1 MiB name gets a denial cut to the
/// denial cap: the name crosses into the host once, and neither the
/// fault, the journal nor the log carries it whole.
#[tokio::test]
async fn a_huge_name_to_look_up_is_denied_and_cut() {
    let (port, accepted) = counting_http_server();
    let grants = connect_to(&[format!("127.0.0.1:{port}")]);
    let huge = "a".repeat(1 << 20);
    let result = misbehave()
        .check(&grants, &[("mode", "lookup"), ("host", &huge)])
        .await;
    let Err(KitFault::Denied(denied)) = result else {
        panic!("not denied: {result:?}");
    };
    assert_eq!(denied.len(), 1, "{denied:?}");
    assert!(denied[0].starts_with("lookup aaaa"), "{}", &denied[0][..40]);
    assert!(denied[0].len() <= 260, "kept {} bytes", denied[0].len());
    assert_eq!(accepted.load(Ordering::SeqCst), 0, "nothing connected");
}

#[tokio::test]
async fn a_granted_name_resolves_and_serves_both_http_paths() {
    let (port, accepted) = counting_http_server();
    let grants = connect_to(&[format!("localhost:{port}")]);
    let sandbox = misbehave();
    let text = degraded_text(
        sandbox
            .check(&grants, &[("mode", "lookup"), ("host", "localhost")])
            .await,
    );
    assert!(text.contains("127.0.0.1"), "{text}");
    let address = format!("localhost:{port}");
    assert_eq!(
        degraded_text(
            sandbox
                .check(&grants, &[("mode", "connect"), ("address", &address)])
                .await
        ),
        "connect ok"
    );
    let url = format!("http://localhost:{port}/");
    for mode in ["fetch", "fetch-wasi", "fetch-raw", "fetch-wasi-raw"] {
        let text = degraded_text(
            sandbox
                .check(&grants, &[("mode", mode), ("url", &url)])
                .await,
        );
        assert_eq!(text, "fetch ok: status 200", "{mode}");
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 5, "one connection each");
}

#[tokio::test]
async fn user_info_in_an_http_authority_is_denied_on_both_paths() {
    let (port, accepted) = counting_http_server();
    let grants = connect_to(&[format!("127.0.0.1:{port}")]);
    let url = format!("http://user@127.0.0.1:{port}/");
    for mode in ["fetch-raw", "fetch-wasi-raw"] {
        let result = misbehave()
            .check(&grants, &[("mode", mode), ("url", &url)])
            .await;
        assert_eq!(
            result,
            Err(KitFault::Denied(vec![format!(
                "http user@127.0.0.1:{port} (user info)"
            )])),
            "{mode}"
        );
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 0, "nothing was sent");
}
