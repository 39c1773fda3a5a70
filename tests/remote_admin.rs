//! The admin API over TCP with mutual TLS only (`[daemon] listen`) against
//! a running daemon: a listed client gets the status and acts, journaled
//! with its certificate's name; a client without a certificate, with one
//! from another CA or with a name not listed is refused, and so is plain
//! HTTP, each refusal in the daemon's log with the client's address and
//! why. Certificates are made by the test (rcgen).
#![allow(clippy::unwrap_used)] // a panic is a failed test

use crate::common;

use std::io::{Read as _, Write as _};
use std::sync::Arc;
use std::time::Duration;

use common::Setup;
use common::tls::{Ca, free_port_on};
use hyper::Method;
use medic::api::client::{Client, ClientError};
use medic::api::tls::{AgentUrl, RefusedBy, TlsClient};
use medic::journal::Kind;
use rcgen::CertificateParams;
use serde_json::{Value, json};

/// The agent's address: a loopback address of its own, the one its
/// certificate names (with a second one, as a fleet's would).
const AGENT_IP: &str = "127.0.0.11";

/// A client presenting a certificate named `name` that `ca` signed,
/// trusting the agents `trusted` signed.
fn client_of(ca: &Ca, name: &str, trusted: &Ca) -> TlsClient {
    let (cert, key) = ca.client_files(name);
    TlsClient::new(&trusted.file(), &cert, &key).unwrap()
}

/// A daemon watching `web` (healthy), listening on the agent's address
/// with `tls/agent.pem` (for 127.0.0.11 and 127.0.0.12) signed by the
/// CA `tls/ca.pem`, which also signs the clients; `controller` and
/// `web-admin` are let in.
struct Agent {
    setup: Setup,
    ca: Ca,
    url: AgentUrl,
    port: u16,
}

impl Agent {
    fn new() -> Self {
        let setup = Setup::new("backend = \"dry-run\"\nmin_uptime = \"0s\"");
        let ca = Ca::new(&setup.dir.path().join("tls"), "ca");
        ca.issue(
            "agent",
            &CertificateParams::new(vec![AGENT_IP.to_owned(), "127.0.0.12".to_owned()]).unwrap(),
        );
        let port = free_port_on(AGENT_IP);
        let setup = setup
            .with_daemon(&format!(
                "listen = \"{AGENT_IP}:{port}\"\ntls_cert = \"tls/agent.pem\"\ntls_key = \"tls/agent.key\"\n\
                 client_ca = \"tls/ca.pem\"\nclients = [\"controller\", \"web-admin\"]\n"
            ))
            .with_kit("misbehave")
            .app(
                "web",
                "kit = \"misbehave\"\ninterval = \"100ms\"\n[recovery]\nthen = \"alert\"\n\
                 [settings]\nmode = \"ok\"\n",
            );
        let url = format!("https://{AGENT_IP}:{port}").parse().unwrap();
        Self {
            setup,
            ca,
            url,
            port,
        }
    }

    /// A client of this agent presenting `tls`'s certificate.
    fn client(&self, tls: TlsClient) -> Client {
        Client::tls(self.url.clone(), Arc::new(tls))
    }
}

/// `client.call(...)` on a runtime of its own.
fn call(
    client: &Client,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Result<Value, ClientError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(client.call(method, path, body.as_ref()))
}

/// The refusal a call with `client` meets: who refused, and why.
fn refusal(client: &Client) -> (RefusedBy, String) {
    match call(client, Method::GET, "/v1/status", None) {
        Err(ClientError::TlsRefused { refusal, url }) => {
            assert!(url.contains(AGENT_IP), "{url}");
            (refusal.by, refusal.reason)
        }
        other => panic!("not a TLS refusal: {other:?}"),
    }
}

/// Waits until the daemon's log has a line with every one of `parts`, and
/// returns it.
fn log_line(daemon: &common::Daemon, parts: &[&str]) -> String {
    let mut found = None;
    let logged = common::wait_for(Duration::from_secs(10), || {
        found = daemon
            .log_text()
            .lines()
            .find(|line| parts.iter().all(|part| line.contains(part)))
            .map(str::to_owned);
        found.is_some()
    });
    assert!(logged, "no log line with {parts:?}:\n{}", daemon.log_text());
    found.unwrap_or_default()
}

#[test]
fn a_listed_client_acts_and_every_other_is_refused_and_logged() {
    let agent = Agent::new();
    let daemon = agent.setup.daemon();
    let controller = agent.client(client_of(&agent.ca, "controller", &agent.ca));
    let mut status = Value::Null;
    let answered = common::wait_for(Duration::from_secs(60), || {
        status = call(&controller, Method::GET, "/v1/status", None).unwrap_or(Value::Null);
        status["apps"][0]["state"] == "healthy"
    });
    assert!(
        answered,
        "no healthy status over TLS: {status}\n{}",
        daemon.log_text()
    );
    assert_eq!(status["apps"][0]["app"], "web");

    call(&controller, Method::POST, "/v1/apps/web/recover", None).unwrap();
    let window = json!({"on": true, "app": "web", "for": "1m", "reason": "remote"});
    call(&controller, Method::POST, "/v1/maintenance", Some(window)).unwrap();
    let events = agent.setup.events();
    let by = |kind: Kind| -> Vec<Value> {
        events
            .iter()
            .filter(|e| e.kind == kind)
            .map(|e| e.detail["by"].clone())
            .collect()
    };
    assert_eq!(
        by(Kind::AdminAction),
        [json!("cert controller"), json!("cert controller")],
        "recover and maintenance_on, by the certificate's name"
    );
    assert_eq!(by(Kind::MaintenanceStarted), [json!("cert controller")]);

    // A certificate whose name is not listed.
    let intruder = agent.client(client_of(&agent.ca, "intruder", &agent.ca));
    let (side, reason) = refusal(&intruder);
    assert_eq!(side, RefusedBy::Agent);
    assert!(reason.contains("[daemon] clients"), "{reason}");
    log_line(
        &daemon,
        &["refused 127.0.0.", "`intruder`", "not in [daemon] clients"],
    );

    // A listed name, from another CA.
    let foreign = Ca::new(&agent.setup.dir.path().join("foreign"), "foreign-ca");
    let impostor = agent.client(client_of(&foreign, "controller", &agent.ca));
    let (side, reason) = refusal(&impostor);
    assert_eq!(side, RefusedBy::Agent);
    assert!(reason.contains("does not trust the CA"), "{reason}");
    log_line(
        &daemon,
        &["refused 127.0.0.", "not signed by [daemon] client_ca"],
    );

    // A client that does not trust the agent's CA refuses the agent.
    let doubting = agent.client(client_of(&agent.ca, "web-admin", &foreign));
    let (side, reason) = refusal(&doubting);
    assert_eq!(side, RefusedBy::Client);
    assert!(reason.contains("not signed by the CA"), "{reason}");

    // No client certificate at all.
    let answer = without_certificate(&agent);
    assert!(!answer.contains("HTTP/1.1"), "{answer}");
    log_line(
        &daemon,
        &["refused 127.0.0.", "it presented no client certificate"],
    );

    // Plain HTTP: no listener answers it.
    let mut plain = std::net::TcpStream::connect((AGENT_IP, agent.port)).unwrap();
    plain
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    plain
        .write_all(b"GET /v1/status HTTP/1.1\r\nHost: agent\r\n\r\n")
        .unwrap();
    let mut answer = Vec::new();
    let _ = plain.read_to_end(&mut answer);
    assert!(
        !String::from_utf8_lossy(&answer).contains("HTTP/1.1"),
        "{answer:?}"
    );
    log_line(&daemon, &["refused 127.0.0.", "does not speak TLS"]);

    // The refused never reached the API: still two admin actions.
    assert_eq!(
        agent
            .setup
            .events()
            .iter()
            .filter(|e| e.kind == Kind::AdminAction)
            .count(),
        2
    );
}

/// What a TLS client that trusts the agent but presents no certificate
/// reads back after sending a request.
fn without_certificate(agent: &Agent) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio_rustls::rustls;
    let mut roots = rustls::RootCertStore::empty();
    for certificate in medic::api::tls::read_certificates(&agent.ca.file()).unwrap() {
        roots.add(certificate).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let name = rustls::pki_types::ServerName::try_from(AGENT_IP).unwrap();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let tcp = tokio::net::TcpStream::connect((AGENT_IP, agent.port))
                .await
                .unwrap();
            let mut answer = Vec::new();
            match connector.connect(name, tcp).await {
                Err(error) => return format!("handshake refused: {error}"),
                Ok(mut tls) => {
                    let request = b"GET /v1/status HTTP/1.1\r\nHost: agent\r\n\r\n";
                    if let Err(error) = tls.write_all(request).await {
                        return format!("write refused: {error}");
                    }
                    if let Err(error) = tls.read_to_end(&mut answer).await {
                        return format!("read refused: {error}");
                    }
                }
            }
            String::from_utf8_lossy(&answer).into_owned()
        })
}

/// Waits until `daemon` has ended and returns its log.
fn ended(daemon: &mut common::Daemon) -> String {
    let stopped = common::wait_for(Duration::from_secs(30), || !daemon.is_running());
    assert!(stopped, "still running: {}", daemon.log_text());
    daemon.log_text()
}

#[test]
fn a_key_others_may_read_or_a_taken_address_stops_the_start() {
    use std::os::unix::fs::PermissionsExt as _;
    let agent = Agent::new();
    let key = agent.setup.dir.path().join("tls/agent.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let log = ended(&mut agent.setup.daemon());
    assert!(
        log.contains("medic: [daemon] listen: ")
            && log.contains(&format!("{}: mode 0644", key.display())),
        "{log}"
    );

    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let _taken = std::net::TcpListener::bind((AGENT_IP, agent.port)).unwrap();
    let log = ended(&mut agent.setup.daemon());
    let cannot = format!(
        "medic: [daemon] listen: cannot listen on {AGENT_IP}:{}",
        agent.port
    );
    assert!(log.contains(&cannot), "{log}");
}

#[test]
fn listen_without_client_ca_is_refused_at_its_line() {
    let setup = Setup::new("backend = \"dry-run\"").with_daemon(
        "listen = \"127.0.0.11:8443\"\ntls_cert = \"agent.pem\"\ntls_key = \"agent.key\"\n\
         clients = [\"controller\"]\n",
    );
    let output = setup.run(&["config", "validate"]);
    assert_eq!(output.status.code(), Some(1));
    let errors = String::from_utf8_lossy(&output.stderr);
    let at = format!("{}:6:10: daemon.listen: ", setup.config().display());
    assert!(
        errors
            .lines()
            .any(|line| line.starts_with(&at) && line.contains("client_ca")),
        "{errors}"
    );
}
