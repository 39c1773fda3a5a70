//! The `tcp` kit side by side with monitoring-plugins' `check_tcp` against
//! real servers: redis answering `PING`, nginx sending a page slowly, a port
//! nobody listens on. Each check gives the same verdict through both.
#![allow(clippy::unwrap_used)] // a panic is a failed test

use crate::common;

use common::nginx::Nginx;
use common::redis::Redis;

/// The monitoring-plugins' `check_tcp`, the tool admins move from.
const CHECK_TCP: &str = "/usr/lib/nagios/plugins/check_tcp";

/// `medic kit test` of the tcp kit and `check_tcp`, one kit cache for a test.
struct SideBySide(common::KitTrials);

impl SideBySide {
    fn new() -> Self {
        Self(common::KitTrials::new("tcp", "relay"))
    }

    /// Asserts that the kit with `settings` for `127.0.0.1:port` and
    /// `check_tcp` with `args` give `verdict` (0 healthy/OK, 1
    /// degraded/WARNING, 2 failed/CRITICAL); returns what the kit printed.
    fn same(&self, port: u16, settings: &str, args: &[&str], verdict: i32) -> String {
        self.same_with(port, settings, "", args, verdict)
    }

    /// [`Self::same`] with `more` of the app file (a `[tls]` table).
    fn same_with(
        &self,
        port: u16,
        settings: &str,
        more: &str,
        args: &[&str],
        verdict: i32,
    ) -> String {
        let (code, text) = self.0.run(&format!(
            "[settings]\naddress = \"127.0.0.1:{port}\"\n{settings}\n\
             [grants]\nconnect = [\"127.0.0.1:{port}\"]\n{more}"
        ));
        assert_eq!(code, Some(verdict), "kit with {settings}: {text}");
        let checked = std::process::Command::new(CHECK_TCP)
            .args([
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-t",
                "4",
                "-E",
                "-M",
                "crit",
            ])
            .args(args)
            .output()
            .unwrap();
        assert_eq!(
            checked.status.code(),
            Some(verdict),
            "check_tcp {args:?}: {}",
            String::from_utf8_lossy(&checked.stdout)
        );
        text
    }
}

#[test]
fn the_kit_judges_as_check_tcp_does() {
    let both = SideBySide::new();
    let redis = Redis::start();
    let port: u16 = redis.address().rsplit_once(':').unwrap().1.parse().unwrap();
    both.same(port, "", &[], 0);
    both.same(
        port,
        "send = \"PING\\\\r\\\\n\"\nexpect = \"+PONG\"",
        &["-s", "PING\\r\\n", "-e", "+PONG"],
        0,
    );
    let said = both.same(
        port,
        "send = \"PING\\\\r\\\\n\"\nexpect = \"+PANG\"",
        &["-s", "PING\\r\\n", "-e", "+PANG"],
        2,
    );
    assert!(said.contains("+PONG"), "what the server said: {said}");
    both.same(
        port,
        "send = \"PING\\\\r\\\\n\"\nexpect_regex = \"^\\\\+PO.G\"",
        &["-s", "PING\\r\\n", "-e", "+PONG"],
        0,
    );

    // nginx sends its page at 1 KiB/s: the end comes after about 1.5 s.
    let mut page = vec![b'x'; 2490];
    page.extend_from_slice(b"END\n");
    let nginx = Nginx::start_serving("location = /slow { limit_rate 1k; }", &[("slow", &page)]);
    let ask = "send = \"GET /slow HTTP/1.0\\\\r\\\\n\\\\r\\\\n\"\nexpect = \"END\"";
    let request = ["-s", "GET /slow HTTP/1.0\\r\\n\\r\\n", "-e", "END"];
    let said = both.same(
        nginx.port,
        &format!("{ask}\nwarn_ms = 300\nfail_ms = 4000"),
        &[&request[..], &["-w", "0.3", "-c", "4"]].concat(),
        1,
    );
    assert!(said.contains("above warn_ms 300"), "{said}");
    both.same(
        nginx.port,
        &format!("{ask}\nfail_ms = 300"),
        &[&request[..], &["-c", "0.3"]].concat(),
        2,
    );

    let nobody = common::free_port();
    both.same(nobody, "", &[], 2);
}

/// Over TLS, trusting the test's CA through the app's `[tls]`: the same
/// request and expectation as `check_tcp --ssl`, and a certificate that
/// expires in 5 days degraded with `cert_days_warn` as `check_tcp -D` warns.
/// A server medic does not trust is `unknown`, where `check_tcp` (which
/// does not verify) says OK.
#[test]
fn over_tls_the_kit_judges_as_check_tcp_ssl_does() {
    let dir = tempfile::tempdir().unwrap();
    let ca = common::tls::Ca::new(dir.path(), "internal-ca");
    let (cert, key) = ca.server_valid("soon", &["127.0.0.1"], -30, 6);
    let nginx = Nginx::start_tls(&cert, &key, "");
    let both = SideBySide::new();
    let trust = format!("[tls]\nca_files = [\"{}\"]\n", ca.file().display());
    let ask = "tls = true\nsend = \"GET /healthz HTTP/1.0\\\\r\\\\n\\\\r\\\\n\"";
    let request = ["--ssl", "-s", "GET /healthz HTTP/1.0\\r\\n\\r\\n"];
    both.same_with(
        nginx.port,
        &format!("{ask}\nexpect = \"200 OK\""),
        &trust,
        &[&request[..], &["-e", "200 OK"]].concat(),
        0,
    );
    both.same_with(
        nginx.port,
        &format!("{ask}\nexpect = \"302 Found\""),
        &trust,
        &[&request[..], &["-e", "302 Found"]].concat(),
        2,
    );
    let said = both.same_with(
        nginx.port,
        "tls = true\ncert_days_warn = 10",
        &trust,
        &["--ssl", "-D", "10"],
        1,
    );
    assert!(said.contains("certificate expires in 5 days"), "{said}");
    assert!(said.contains("cert_issuer = CN=internal-ca"), "{said}");

    let (code, text) = both.0.run(&format!(
        "[settings]\naddress = \"127.0.0.1:{port}\"\ntls = true\n\
         [grants]\nconnect = [\"127.0.0.1:{port}\"]\n",
        port = nginx.port
    ));
    assert_eq!(code, Some(3), "{text}");
    assert!(
        text.contains("certificate signed by an unknown issuer"),
        "{text}"
    );
}
