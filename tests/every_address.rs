//! A granted name that resolves to several addresses is tried on each in
//! turn, end to end: in a network and mount namespace the test makes,
//! `localhost` resolves to 127.0.0.1 and ::1 (its own `/etc/hosts`, bound
//! over the machine's in that namespace only) and nginx listens on ::1
//! alone. The `http` and `tcp` kits reach it, as curl does; with
//! `localhost` as 127.0.0.1 only, both find the connection refused.
#![allow(clippy::unwrap_used)] // a panic is a failed test

use std::process::Command;

use crate::common;

/// Runs `medic kit test` of `kit` for `app` inside a fresh network and
/// mount namespace whose `/etc/hosts` is `hosts`, beside an nginx that
/// listens on [::1]:8080 only: medic's exit code and what it printed.
fn in_namespace(hosts: &str, kit: &str, app: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).display().to_string();
    std::fs::create_dir_all(dir.path().join("html")).unwrap();
    std::fs::create_dir_all(dir.path().join("logs")).unwrap();
    std::fs::write(dir.path().join("html/healthz"), "ok\n").unwrap();
    std::fs::write(dir.path().join("hosts"), hosts).unwrap();
    std::fs::write(dir.path().join("app.toml"), app).unwrap();
    std::fs::write(
        dir.path().join("nginx.conf"),
        format!(
            "worker_processes 1;\nerror_log {logs}/error.log;\npid {dir}/nginx.pid;\ndaemon off;\nmaster_process off;\n\
             events {{ worker_connections 64; }}\n\
             http {{ access_log off; client_body_temp_path {dir}; proxy_temp_path {dir}; fastcgi_temp_path {dir}; \
             uwsgi_temp_path {dir}; scgi_temp_path {dir};\n\
             server {{ listen [::1]:8080; root {html}; location / {{ }} }} }}\n",
            logs = path("logs"),
            dir = dir.path().display(),
            html = path("html"),
        ),
    )
    .unwrap();
    let script = format!(
        "set -e\nip link set lo up\nmount --bind {hosts} /etc/hosts\n\
         {nginx} -c {conf} -p {dir} &\nnginx=$!\ntrap 'kill $nginx; wait $nginx 2>/dev/null' EXIT\n\
         for i in $(seq 50); do [ -f {dir}/nginx.pid ] && break; sleep 0.1; done\n\
         set +e\nXDG_CACHE_HOME={cache} {medic} kit test {kit} --app {app}\n",
        hosts = path("hosts"),
        nginx = common::nginx::NGINX,
        conf = path("nginx.conf"),
        dir = dir.path().display(),
        cache = path("cache"),
        medic = env!("CARGO_BIN_EXE_medic"),
        kit = common::guests::kit(kit).display(),
        app = path("app.toml"),
    );
    let output = Command::new("unshare")
        .args(["--mount", "--net", "sh", "-c", &script])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.code(), text)
}

const BOTH: &str = "127.0.0.1 localhost\n::1 localhost\n";
const V4_ONLY: &str = "127.0.0.1 localhost\n";

#[test]
fn a_server_on_one_address_of_a_name_is_reached_by_http_and_tcp() {
    let http = "kit = \"http\"\n[settings]\nurl = \"http://localhost:8080/healthz\"\nexpect_body = \"ok\"\n\
                [grants]\nconnect = [\"localhost:8080\"]\n";
    let tcp = "kit = \"tcp\"\n[settings]\naddress = \"localhost:8080\"\n\
               [grants]\nconnect = [\"localhost:8080\"]\n";
    for (kit, app) in [("http", http), ("tcp", tcp)] {
        let (code, text) = in_namespace(BOTH, kit, app);
        assert_eq!(
            code,
            Some(0),
            "{kit}, localhost as 127.0.0.1 and ::1: {text}"
        );
        let (code, text) = in_namespace(V4_ONLY, kit, app);
        assert_eq!(code, Some(2), "{kit}, localhost as 127.0.0.1 only: {text}");
        assert!(text.contains("connection refused"), "{kit}: {text}");
    }
}
