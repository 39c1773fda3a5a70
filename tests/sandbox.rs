//! The sandbox against hostile and well-behaved guests: one misbehaving kit
//! (`tests/guests/misbehave`) whose `mode` setting picks the misbehaviour,
//! and malformed kit files. Each unsafe behaviour is tested as denied.
#![allow(clippy::unwrap_used)] // a panic is a failed test

use crate::common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use medic::config::Grants;
use medic::sandbox::{CallScope, Kit, KitEngine, KitFault, LoadError, NextStep, Verdict};

mod connect_grants;

const TIMEOUT: Duration = Duration::from_secs(2);

/// The shared kit and this test's own kit-state directory.
struct Sandbox {
    dir: tempfile::TempDir,
    kit: Kit,
}

/// The misbehaving kit, compiled once for all tests of this binary.
fn misbehave() -> Sandbox {
    static KIT: OnceLock<Kit> = OnceLock::new();
    let kit = KIT
        .get_or_init(|| {
            KitEngine::new(None)
                .unwrap()
                .load(&common::guests::kit("misbehave"))
                .unwrap()
        })
        .clone();
    Sandbox {
        dir: tempfile::tempdir().unwrap(),
        kit,
    }
}

impl Sandbox {
    fn scope(&self, grants: &Grants) -> CallScope {
        CallScope::new("test", grants, self.dir.path().join("state.json"), 64 << 20)
    }

    async fn check(&self, grants: &Grants, settings: &[(&str, &str)]) -> Result<Verdict, KitFault> {
        self.check_within(grants, settings, TIMEOUT).await
    }

    async fn check_within(
        &self,
        grants: &Grants,
        settings: &[(&str, &str)],
        timeout: Duration,
    ) -> Result<Verdict, KitFault> {
        let settings: Vec<(String, String)> = settings
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.kit
            .check(self.scope(grants), timeout, &settings)
            .await
            .map(|checked| checked.health)
    }
}

fn none() -> Grants {
    Grants::default()
}

fn degraded_text(result: Result<Verdict, KitFault>) -> String {
    match result {
        Ok(Verdict::Degraded(text)) => text,
        other => panic!("expected degraded, got {other:?}"),
    }
}

fn failed_text(result: Result<Verdict, KitFault>) -> String {
    match result {
        Ok(Verdict::Failed(text)) => text,
        other => panic!("expected failed, got {other:?}"),
    }
}

#[tokio::test]
async fn well_behaved_check_is_healthy() {
    assert_eq!(
        misbehave().check(&none(), &[("mode", "ok")]).await,
        Ok(Verdict::Healthy)
    );
}

#[tokio::test]
async fn endless_loop_is_killed_at_the_deadline_and_the_next_check_runs() {
    let sandbox = misbehave();
    let started = Instant::now();
    let result = sandbox
        .check_within(&none(), &[("mode", "loop")], Duration::from_millis(300))
        .await;
    assert_eq!(result, Err(KitFault::Spinning(Duration::from_millis(300))));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "interrupted near its deadline"
    );
    assert_eq!(
        sandbox.check(&none(), &[("mode", "ok")]).await,
        Ok(Verdict::Healthy)
    );
}

#[tokio::test]
async fn allocating_a_gib_hits_the_memory_cap() {
    let result = misbehave()
        .check(&none(), &[("mode", "alloc"), ("mib", "1024")])
        .await;
    assert_eq!(result, Err(KitFault::MemoryLimit(64 << 20)));
}

#[tokio::test]
async fn allocating_under_the_cap_works() {
    let text = degraded_text(
        misbehave()
            .check(&none(), &[("mode", "alloc"), ("mib", "8")])
            .await,
    );
    assert!(text.contains("allocated 8"), "{text}");
}

#[tokio::test]
async fn panic_is_a_trap() {
    let result = misbehave().check(&none(), &[("mode", "trap")]).await;
    let Err(KitFault::Trap(reason)) = result else {
        panic!("{result:?}")
    };
    assert!(reason.contains("unreachable"), "the trap: {reason}");
    assert!(
        reason.contains("told to trap"),
        "the panic message from stderr: {reason}"
    );
}

#[tokio::test]
async fn no_env_no_args() {
    assert_eq!(
        degraded_text(misbehave().check(&none(), &[("mode", "env")]).await),
        "env 0 args 0"
    );
}

#[tokio::test]
async fn reading_etc_shadow_is_denied() {
    let text = failed_text(
        misbehave()
            .check(&none(), &[("mode", "read"), ("path", "/etc/shadow")])
            .await,
    );
    assert!(text.starts_with("read denied"), "{text}");
}

#[tokio::test]
async fn reading_outside_the_granted_dir_is_denied_and_inside_works() {
    let granted = tempfile::tempdir().unwrap();
    std::fs::write(granted.path().join("inside.txt"), "12345").unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("outside.txt"), "secret").unwrap();
    let grants = Grants {
        read: vec![granted.path().to_path_buf()],
        ..Grants::default()
    };
    let sandbox = misbehave();
    let inside = granted.path().join("inside.txt");
    let text = degraded_text(
        sandbox
            .check(
                &grants,
                &[("mode", "read"), ("path", inside.to_str().unwrap())],
            )
            .await,
    );
    assert_eq!(text, "read ok: 5 bytes");
    let escape = granted
        .path()
        .join("../")
        .join(outside.path().file_name().unwrap())
        .join("outside.txt");
    for path in [
        outside.path().join("outside.txt"),
        escape,
        PathBuf::from("/etc/shadow"),
    ] {
        let text = failed_text(
            sandbox
                .check(
                    &grants,
                    &[("mode", "read"), ("path", path.to_str().unwrap())],
                )
                .await,
        );
        assert!(
            text.starts_with("read denied"),
            "{}: {text}",
            path.display()
        );
    }
}

#[tokio::test]
async fn granted_dir_is_read_only() {
    // Writing into a granted directory, over a file or beside it, fails;
    // reading stays possible.
    let granted = tempfile::tempdir().unwrap();
    std::fs::write(granted.path().join("f"), "x").unwrap();
    let grants = Grants {
        read: vec![granted.path().to_path_buf()],
        ..Grants::default()
    };
    let path = granted.path().join("f");
    let text = degraded_text(
        misbehave()
            .check(
                &grants,
                &[("mode", "read"), ("path", path.to_str().unwrap())],
            )
            .await,
    );
    assert_eq!(text, "read ok: 1 bytes");
    let text = failed_text(
        misbehave()
            .check(
                &grants,
                &[("mode", "write"), ("path", path.to_str().unwrap())],
            )
            .await,
    );
    assert!(text.starts_with("write denied: "), "{text}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "x", "unchanged");
    assert!(!granted.path().join("f.new").exists(), "nothing created");
}

/// A one-shot HTTP server on 127.0.0.1 answering 200 to every request.
fn http_server() -> u16 {
    counting_http_server().0
}

/// [`http_server`], and how many connections it has accepted.
fn counting_http_server() -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            count.fetch_add(1, Ordering::SeqCst);
            let mut buf = [0u8; 1024];
            let _ = stream.read(&mut buf);
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
        }
    });
    (port, accepted)
}

#[tokio::test]
async fn connecting_to_an_ungranted_address_is_denied() {
    let port = http_server();
    let address = format!("127.0.0.1:{port}");
    let result = misbehave()
        .check(&none(), &[("mode", "connect"), ("address", &address)])
        .await;
    assert_eq!(
        result,
        Err(KitFault::Denied(vec![format!("connect {address}")])),
        "nothing granted"
    );
    let other = Grants {
        connect: vec![format!("127.0.0.1:{}", port + 1)],
        ..Grants::default()
    };
    let result = misbehave()
        .check(&other, &[("mode", "connect"), ("address", &address)])
        .await;
    assert_eq!(
        result,
        Err(KitFault::Denied(vec![format!("connect {address}")]))
    );
}

#[tokio::test]
async fn connecting_to_a_granted_address_works() {
    let port = http_server();
    let address = format!("127.0.0.1:{port}");
    let grants = Grants {
        connect: vec![address.clone()],
        ..Grants::default()
    };
    assert_eq!(
        degraded_text(
            misbehave()
                .check(&grants, &[("mode", "connect"), ("address", &address)])
                .await
        ),
        "connect ok"
    );
}

/// Both HTTP paths: the host's `http-get` (`fetch`) and wasi:http
/// (`fetch-wasi`), each guarded on its own.
const FETCH_MODES: [&str; 3] = ["fetch", "fetch-wasi", "send"];

#[tokio::test]
async fn fetching_from_an_ungranted_address_is_denied() {
    let port = http_server();
    let url = format!("http://127.0.0.1:{port}/");
    let grants = Grants {
        connect: vec![format!("127.0.0.1:{}", port + 1)],
        ..Grants::default()
    };
    for mode in FETCH_MODES {
        let result = misbehave()
            .check(&grants, &[("mode", mode), ("url", &url)])
            .await;
        assert_eq!(
            result,
            Err(KitFault::Denied(vec![format!("http 127.0.0.1:{port}")])),
            "{mode}"
        );
        let result = misbehave()
            .check(&none(), &[("mode", mode), ("url", &url)])
            .await;
        assert!(
            matches!(result, Err(KitFault::Denied(_))),
            "{mode}, nothing granted: {result:?}"
        );
    }
}

#[tokio::test]
async fn fetching_from_a_granted_address_works() {
    let port = http_server();
    let url = format!("http://127.0.0.1:{port}/");
    let grants = Grants {
        connect: vec![format!("127.0.0.1:{port}")],
        ..Grants::default()
    };
    for mode in FETCH_MODES {
        let text = degraded_text(
            misbehave()
                .check(&grants, &[("mode", mode), ("url", &url)])
                .await,
        );
        assert!(text.starts_with("fetch ok: status 200"), "{mode}: {text}");
    }
}

#[tokio::test]
async fn exec_of_an_ungranted_program_is_denied() {
    let grants = Grants {
        exec: vec![PathBuf::from("/bin/echo")],
        ..Grants::default()
    };
    let result = misbehave()
        .check(
            &grants,
            &[("mode", "exec"), ("program", "/bin/sh"), ("args", "-c id")],
        )
        .await;
    assert_eq!(result, Err(KitFault::Denied(vec!["exec /bin/sh".into()])));
}

#[tokio::test]
async fn exec_of_a_granted_program_runs_without_a_shell() {
    let grants = Grants {
        exec: vec![PathBuf::from("/bin/echo")],
        ..Grants::default()
    };
    let text = degraded_text(
        misbehave()
            .check(
                &grants,
                &[
                    ("mode", "exec"),
                    ("program", "/bin/echo"),
                    ("args", "hi $HOME"),
                ],
            )
            .await,
    );
    assert_eq!(text, "exec ok: exit Some(0) stdout \"hi $HOME\\n\"");
}

/// A kit that asks a host call to wait far past its deadline gets a timeout
/// the kit sees, before the deadline, so it can still answer: for `exec`,
/// `run`, `http-get` and wasi:http alike.
#[tokio::test]
async fn host_calls_that_wait_end_before_the_deadline_with_a_timeout() {
    let silent = common::silent::tcp(Duration::from_secs(30));
    let grants = Grants {
        exec: vec![PathBuf::from("/bin/sleep")],
        connect: vec![format!("127.0.0.1:{silent}")],
        ..Grants::default()
    };
    let url = format!("http://127.0.0.1:{silent}/");
    let sandbox = misbehave();
    let deadline = Duration::from_millis(1000);
    let exec = |mode| {
        vec![
            ("mode", mode),
            ("program", "/bin/sleep"),
            ("args", "30"),
            ("timeout_ms", "4000000000"),
        ]
    };
    let fetch = |mode| {
        vec![
            ("mode", mode),
            ("url", url.as_str()),
            ("timeout_ms", "4000000000"),
        ]
    };
    for settings in [
        exec("exec"),
        exec("run"),
        fetch("fetch"),
        fetch("fetch-wasi"),
        fetch("send"),
    ] {
        let started = Instant::now();
        let result = sandbox.check_within(&grants, &settings, deadline).await;
        let took = started.elapsed();
        let text = match result {
            Ok(Verdict::Degraded(text) | Verdict::Failed(text)) => text,
            other => panic!("{settings:?}: the kit answers, got {other:?}"),
        };
        assert!(
            text.contains("exit None")
                || text.to_lowercase().contains("timeout")
                || text.contains("within"),
            "{settings:?}: the kit saw a timeout: {text}"
        );
        assert!(
            took < deadline,
            "{settings:?}: done before the deadline, in {took:?}"
        );
        assert!(
            took > Duration::from_millis(800),
            "{settings:?}: it waited until the margin (100 ms) before the deadline: {took:?}"
        );
    }
}

/// `http-send` takes nothing unbounded from a kit: an oversized URL, too
/// many headers, a header that would smuggle another, a huge body are
/// refused before any connection; a secret the app's `[secrets]` lacks is
/// a denial. What a server floods back is capped: headers at 64, the body
/// at what the kit asked for.
#[tokio::test]
async fn http_send_bounds_what_a_hostile_kit_sends_and_a_server_floods_back() {
    let port = flooding_server();
    let url = format!("http://127.0.0.1:{port}/");
    let grants = Grants {
        connect: vec![format!("127.0.0.1:{port}")],
        ..Grants::default()
    };
    let sandbox = misbehave();
    let send = |extra: &[(&'static str, &'static str)]| {
        let mut settings = vec![("mode", "send"), ("url", url.as_str())];
        settings.extend_from_slice(extra);
        settings
    };
    for (extra, says) in [
        (&[("url_pad", "100000")][..], "URL longer than 2048 bytes"),
        (&[("headers", "100000")][..], "more than 32 headers"),
        (
            &[("headers", "1"), ("header_value", "x\r\nX-Smuggled: 1")][..],
            "is not valid",
        ),
        (
            &[("body_len", "10000000")][..],
            "body longer than 65536 bytes",
        ),
        (
            &[("method", "GET /admin HTTP/1.1\r\n")][..],
            "method longer",
        ),
    ] {
        let text = failed_text(sandbox.check(&grants, &send(extra)).await);
        assert!(text.contains(says), "{extra:?}: {text}");
    }
    let asked = sandbox
        .check(&grants, &send(&[("secret", "root_ssh_key")]))
        .await;
    assert!(
        matches!(&asked, Err(KitFault::Denied(what)) if what[0].contains("no secret \"root_ssh_key\"")),
        "{asked:?}"
    );
    let text = degraded_text(sandbox.check(&grants, &send(&[("max_body", "1000")])).await);
    assert_eq!(
        text,
        "fetch ok: status 200; 64 headers, 1000 body bytes, truncated true"
    );
}

/// `tls-connect` holds a kit to its grants and bounds: an ungranted
/// address is denied, an oversized one refused, a fifth stream at once
/// refused, a read is capped at 64 KiB, and a server that never answers
/// the handshake ends the wait before the call's deadline.
#[tokio::test]
async fn tls_connect_bounds_what_a_hostile_kit_opens() {
    let dir = tempfile::tempdir().unwrap();
    let ca = common::tls::Ca::new(dir.path(), "test-ca");
    let (cert, key) = ca.server("web", &["127.0.0.1"]);
    let big = vec![b'x'; 200 * 1024];
    let nginx = common::nginx::Nginx::start_tls(&cert, &key, "");
    std::fs::write(nginx.prefix.join("html/big"), &big).unwrap();
    let silent = common::silent::tcp(Duration::from_secs(30));
    let address = format!("127.0.0.1:{}", nginx.port);
    let grants = Grants {
        connect: vec![address.clone(), format!("127.0.0.1:{silent}")],
        ..Grants::default()
    };
    let tls = medic::config::TlsSettings {
        ca_files: vec![ca.file()],
        ..Default::default()
    };
    let sandbox = misbehave();
    let scope = sandbox.scope(&grants).with_files(&tls, &[]);
    let check = |settings: Vec<(&str, String)>| {
        let settings: Vec<(String, String)> = settings
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        let scope = scope.clone();
        let kit = sandbox.kit.clone();
        async move {
            kit.check(scope, TIMEOUT, &settings)
                .await
                .map(|checked| checked.health)
        }
    };
    let tls_mode =
        |address: &str| vec![("mode", "tls".to_owned()), ("address", address.to_owned())];

    let ungranted = check(tls_mode("127.0.0.1:9")).await;
    assert!(
        matches!(ungranted, Err(KitFault::Denied(_))),
        "{ungranted:?}"
    );

    let mut padded = tls_mode(&address);
    padded.push(("pad", "100000".to_owned()));
    let text = failed_text(check(padded).await);
    assert!(text.contains("address longer than 300 bytes"), "{text}");

    let mut many = tls_mode(&address);
    many.push(("streams", "10".to_owned()));
    let text = failed_text(check(many).await);
    assert!(
        text.contains("tls refused after 4: tls-connect: at most 4"),
        "{text}"
    );

    let mut big_read = tls_mode(&address);
    big_read.push(("send", "GET /big HTTP/1.0\r\n\r\n".to_owned()));
    let text = degraded_text(check(big_read).await);
    let bytes: usize = text
        .split(", ")
        .nth(1)
        .and_then(|part| part.strip_suffix(" bytes"))
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=64 * 1024).contains(&bytes), "{text}");
    assert!(text.ends_with("certificate true"), "{text}");

    let started = Instant::now();
    let text = failed_text(check(tls_mode(&format!("127.0.0.1:{silent}"))).await);
    assert!(text.contains("no TLS connection within"), "{text}");
    assert!(started.elapsed() < TIMEOUT, "{:?}", started.elapsed());
}

/// A server that answers every connection with 90 headers of 1 KiB and a
/// body without end, until the client goes.
fn flooding_server() -> u16 {
    use std::io::{Read as _, Write as _};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            std::thread::spawn(move || {
                let mut request = [0u8; 4096];
                let _ = stream.read(&mut request);
                let mut head = String::from("HTTP/1.1 200 OK\r\n");
                for i in 0..90 {
                    head.push_str(&format!("X-Flood-{i}: {}\r\n", "f".repeat(1024)));
                }
                head.push_str("\r\n");
                let _ = stream.write_all(head.as_bytes());
                let chunk = [b'x'; 16 * 1024];
                while stream.write_all(&chunk).is_ok() {}
            });
        }
    });
    port
}

/// The kit's own waits are its business: one that sleeps past its deadline
/// is still cut off there, as a kit fault.
#[tokio::test]
async fn a_kit_that_sleeps_past_its_deadline_is_cut_off() {
    let started = Instant::now();
    let result = misbehave()
        .check_within(
            &none(),
            &[("mode", "sleep"), ("ms", "30000")],
            Duration::from_millis(300),
        )
        .await;
    assert_eq!(result, Err(KitFault::Timeout(Duration::from_millis(300))));
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// A 0.1.2 kit is told its deadline and may answer that it cannot judge.
#[tokio::test]
async fn a_0_1_2_kit_knows_its_deadline_and_can_say_unknown() {
    let sandbox = misbehave();
    let told = sandbox
        .check_within(
            &none(),
            &[("mode", "deadline")],
            Duration::from_millis(1234),
        )
        .await;
    assert_eq!(told, Ok(Verdict::Degraded("deadline 1234 ms".into())));
    assert_eq!(
        sandbox.check(&none(), &[("mode", "unknown")]).await,
        Ok(Verdict::Unknown("told it cannot judge".into()))
    );
}

#[tokio::test]
async fn logging_100_mib_finishes_and_is_capped() {
    let sandbox = misbehave();
    let started = Instant::now();
    let result = sandbox
        .check_within(
            &none(),
            &[("mode", "log"), ("mib", "100")],
            Duration::from_secs(30),
        )
        .await;
    assert_eq!(degraded_text(result), "logged");
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[tokio::test]
async fn kit_state_persists_across_calls() {
    let sandbox = misbehave();
    assert_eq!(
        degraded_text(sandbox.check(&none(), &[("mode", "state")]).await),
        "counter 1"
    );
    assert_eq!(
        degraded_text(sandbox.check(&none(), &[("mode", "state")]).await),
        "counter 2"
    );
}

#[tokio::test]
async fn run_passes_exactly_the_given_environment_and_directory() {
    let grants = Grants {
        exec: vec![PathBuf::from("/usr/bin/env"), PathBuf::from("/bin/pwd")],
        env: vec!["GREETING".into(), "LANG".into()],
        ..Grants::default()
    };
    let sandbox = misbehave();
    let env = sandbox
        .check(
            &grants,
            &[
                ("mode", "run"),
                ("program", "/usr/bin/env"),
                ("env", "GREETING=hi,LANG=C"),
            ],
        )
        .await;
    assert_eq!(
        degraded_text(env),
        "run ok: exit Some(0) stdout \"GREETING=hi\\nLANG=C\\n\
         OCF_FUNCTIONS_DIR=/usr/lib/ocf/lib/heartbeat\\nOCF_ROOT=/usr/lib/ocf\\n\
         PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\\n\" truncated false",
        "medic's fixed PATH and OCF_ROOT, the granted names, nothing inherited from medic"
    );
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path().to_str().unwrap();
    let pwd = sandbox
        .check(
            &grants,
            &[("mode", "run"), ("program", "/bin/pwd"), ("cwd", cwd)],
        )
        .await;
    assert_eq!(
        degraded_text(pwd),
        format!("run ok: exit Some(0) stdout \"{cwd}\\n\" truncated false")
    );
    let root = sandbox
        .check(&grants, &[("mode", "run"), ("program", "/bin/pwd")])
        .await;
    assert_eq!(
        degraded_text(root),
        "run ok: exit Some(0) stdout \"/\\n\" truncated false"
    );
}

#[tokio::test]
async fn run_caps_output_and_reports_the_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let program = dir.path().join("chatty");
    std::fs::write(&program, "#!/bin/sh\nyes | head -c 100000\nexit 7\n").unwrap();
    std::fs::set_permissions(
        &program,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let grants = Grants {
        exec: vec![program.clone()],
        ..Grants::default()
    };
    let text = degraded_text(
        misbehave()
            .check(
                &grants,
                &[
                    ("mode", "run"),
                    ("program", program.to_str().unwrap()),
                    ("output_max", "10"),
                ],
            )
            .await,
    );
    assert_eq!(
        text,
        "run ok: exit Some(7) stdout \"y\\ny\\ny\\ny\\ny\\n\" truncated true"
    );
}

#[tokio::test]
async fn run_refuses_what_would_make_a_granted_program_run_other_code() {
    // Even a grant that would open them (a hand-built policy: the config
    // refuses such patterns) does not pass these names.
    let grants = Grants {
        exec: vec![PathBuf::from("/bin/true")],
        env: vec![
            "LD_*".into(),
            "BASH*".into(),
            "PERL5OPT".into(),
            "PATH".into(),
        ],
        ..Grants::default()
    };
    for env in [
        "LD_PRELOAD=/tmp/x.so",
        "BASH_ENV=/tmp/x",
        "BASH_FUNC_f%%=() { id; }",
        "PERL5OPT=-Mbase;system(q(id))",
        "PATH=/tmp",
        "NODE_OPTIONS=--require /tmp/x.js",
    ] {
        let result = misbehave()
            .check(
                &grants,
                &[("mode", "run"), ("program", "/bin/true"), ("env", env)],
            )
            .await;
        let name = env.split('=').next().unwrap();
        match result {
            Err(KitFault::Denied(denied)) => assert!(
                denied.len() == 1
                    && denied[0]
                        .starts_with(&format!("exec /bin/true with {name} can never be granted")),
                "{env}: {denied:?}"
            ),
            other => panic!("{env}: {other:?}"),
        }
    }
    let ungranted = misbehave()
        .check(
            &grants,
            &[("mode", "run"), ("program", "/bin/true"), ("env", "LANG=C")],
        )
        .await;
    assert_eq!(
        ungranted,
        Err(KitFault::Denied(vec![
            "exec /bin/true with LANG is not in the app's [grants] env".into()
        ]))
    );
    let result = misbehave()
        .check(
            &grants,
            &[("mode", "run"), ("program", "/bin/sh"), ("args", "-c id")],
        )
        .await;
    assert_eq!(result, Err(KitFault::Denied(vec!["exec /bin/sh".into()])));
    let text = failed_text(
        misbehave()
            .check(
                &grants,
                &[("mode", "run"), ("program", "/bin/true"), ("cwd", "tmp")],
            )
            .await,
    );
    assert_eq!(
        text,
        "run refused: working directory \"tmp\" is not an absolute path"
    );
}

#[tokio::test]
async fn annotations_come_back_capped() {
    let sandbox = misbehave();
    let checked = sandbox
        .kit
        .check(
            sandbox.scope(&none()),
            TIMEOUT,
            &[("mode".to_owned(), "annotate".to_owned())],
        )
        .await
        .unwrap();
    assert_eq!(checked.health, Verdict::Failed("annotated".into()));
    assert_eq!(checked.annotations.len(), 16);
    assert_eq!(
        checked.annotations[0],
        ("perfdata".to_owned(), "time=0.5s;1;2".to_owned())
    );
    let long = &checked.annotations[1].1;
    assert!(
        long.len() == 1024 + '…'.len_utf8() && long.ends_with('…'),
        "cut at 1 KiB and marked: {} bytes",
        long.len()
    );
}

#[tokio::test]
async fn a_reported_process_comes_back_pinned_and_a_dead_pid_is_refused() {
    let sandbox = misbehave();
    let settings = |pid: u32| {
        vec![
            ("mode".to_owned(), "watch".to_owned()),
            ("pid".to_owned(), pid.to_string()),
        ]
    };
    let me = std::process::id();
    let checked = sandbox
        .kit
        .check(sandbox.scope(&none()), TIMEOUT, &settings(me))
        .await
        .unwrap();
    assert_eq!(checked.health, Verdict::Healthy);
    assert_eq!(checked.process.map(|p| p.pid()), Some(me));

    let mut child = std::process::Command::new("true").spawn().unwrap();
    let gone = child.id();
    child.wait().unwrap();
    let checked = sandbox
        .kit
        .check(sandbox.scope(&none()), TIMEOUT, &settings(gone))
        .await
        .unwrap();
    assert_eq!(
        checked.health,
        Verdict::Failed(format!("no live process has pid {gone}"))
    );
    assert!(checked.process.is_none());
}

/// A kit built against `medic:kit@0.1.0` (frozen in its own `wit/`) loads
/// in this host and every export and host import it uses still works.
#[tokio::test]
async fn a_kit_built_for_0_1_0_keeps_working() {
    let dir = tempfile::tempdir().unwrap();
    let kit = KitEngine::new(None)
        .unwrap()
        .load(&common::guests::kit("legacy_0_1_0"))
        .unwrap();
    let scope = || CallScope::new("old", &none(), dir.path().join("state.json"), 64 << 20);
    let info = kit.describe(scope(), TIMEOUT).await.unwrap();
    assert_eq!(
        (info.name.as_str(), info.version.as_str()),
        ("legacy", "0.1.0")
    );
    let verdict = |value: &str| vec![("verdict".to_owned(), value.to_owned())];
    let checked = kit
        .check(scope(), TIMEOUT, &verdict("healthy"))
        .await
        .unwrap();
    assert_eq!(checked.health, Verdict::Healthy);
    let checked = kit.check(scope(), TIMEOUT, &verdict("down")).await.unwrap();
    assert_eq!(
        checked.health,
        Verdict::Failed("verdict Some(\"down\"), check 2".into()),
        "its kit state persisted between the calls"
    );
    assert_eq!(
        kit.recover(scope(), TIMEOUT, &verdict("down"), 1).await,
        Ok(Ok(NextStep::RestartApp))
    );
}

fn load(bytes: &[u8]) -> Result<Kit, LoadError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.wasm");
    std::fs::write(&path, bytes).unwrap();
    KitEngine::new(Some(dir.path().join("cache")))
        .unwrap()
        .load(&path)
}

#[test]
fn random_bytes_are_not_a_kit() {
    let bytes: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    assert!(matches!(load(&bytes), Err(LoadError::NotWasm)));
}

#[test]
fn an_empty_file_is_not_a_kit() {
    assert!(matches!(load(b""), Err(LoadError::NotWasm)));
}

#[test]
fn a_core_module_is_not_a_kit() {
    let module = wat::parse_str("(module (func (export \"check\")))").unwrap();
    let error = load(&module).err().expect("a core module must be refused");
    assert!(matches!(error, LoadError::Compile(_)), "{error}");
}

#[test]
fn a_component_of_another_world_is_not_a_kit() {
    let component = wat::parse_str("(component (core module $m (func (export \"run\"))) (core instance $i (instantiate $m)) (func (export \"run\") (canon lift (core func $i \"run\"))))").unwrap();
    let error = load(&component)
        .err()
        .expect("another world must be refused");
    assert!(matches!(error, LoadError::NotAKit(_)), "{error}");
}

/// A granted program that leaves a grandchild behind: whether it exits at
/// once or hangs until its timeout, its whole process group is killed, so
/// nothing it started outlives the call (or holds its pipes open).
#[tokio::test]
async fn a_granted_program_leaves_no_grandchild_behind() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("grandchild.pid");
    let script = |name: &str, tail: &str| {
        let path = dir.path().join(name);
        std::fs::write(
            &path,
            format!(
                "#!/bin/sh\nsleep 300 &\necho $! > {}\necho started\n{tail}",
                pidfile.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        path
    };
    let quick = script("quick", "exit 0\n");
    let hung = script("hung", "sleep 300\n");
    let grants = Grants {
        exec: vec![quick.clone(), hung.clone()],
        ..Grants::default()
    };
    for (program, expect) in [
        (
            &quick,
            "run ok: exit Some(0) stdout \"started\\n\" truncated false",
        ),
        (&hung, "run ok: exit None stdout \"\" truncated false"),
    ] {
        let started = Instant::now();
        let text = degraded_text(
            misbehave()
                .check_within(
                    &grants,
                    &[
                        ("mode", "run"),
                        ("program", program.to_str().unwrap()),
                        ("timeout_ms", "1000"),
                    ],
                    Duration::from_secs(5),
                )
                .await,
        );
        assert_eq!(text, expect, "{}", program.display());
        assert!(
            common::gone_soon(&pidfile),
            "{}: the grandchild still runs",
            program.display()
        );
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{}: its pipes did not hold the call",
            program.display()
        );
        std::fs::remove_file(&pidfile).unwrap();
    }
}

/// Hundreds of calls at once, each waiting on the outside world, neither
/// exhaust the instance pool nor fault: beyond the calls in flight they
/// wait for a place, and the wait is not counted against their deadline
/// (the last ones start after more than their whole timeout).
#[test]
fn calls_beyond_the_pool_wait_for_a_place_not_fault() {
    const CALLS: usize = 300;
    let engine = KitEngine::new(None).unwrap();
    let kit = engine.load(&common::guests::kit("misbehave")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let settings = vec![
        ("mode".to_owned(), "sleep".to_owned()),
        ("ms".to_owned(), "200".to_owned()),
    ];
    let timeout = Duration::from_millis(600);
    let started = Instant::now();
    let answers = runtime.block_on(async {
        let calls = (0..CALLS).map(|i| {
            let scope = CallScope::new(
                &format!("app{i}"),
                &Grants::default(),
                dir.path().join(format!("{i}.json")),
                64 << 20,
            );
            let (kit, settings) = (kit.clone(), settings.clone());
            tokio::spawn(async move {
                kit.check(scope, timeout, &settings)
                    .await
                    .map(|checked| checked.health)
            })
        });
        futures_util::future::join_all(calls).await
    });
    let took = started.elapsed();
    for answer in answers {
        assert_eq!(
            answer.unwrap(),
            Ok(Verdict::Degraded("slept 200 ms".into()))
        );
    }
    assert!(
        took > timeout,
        "the calls were queued ({took:?}): some started after a whole timeout"
    );
}
