//! Certificates made by the tests (rcgen): a CA and what it signs, as PEM
//! files with keys 0600, the way an admin's openssl or step-ca would.

use std::path::{Path, PathBuf};

use rcgen::{CertificateParams, CertifiedIssuer, DnType, KeyPair};

/// A CA and the certificates it signs, as PEM files in `dir`.
pub struct Ca {
    pub dir: PathBuf,
    pub name: &'static str,
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Ca {
    /// A CA named `name`, its certificate written to `dir/<name>.pem`.
    pub fn new(dir: &Path, name: &'static str) -> Self {
        let mut params = CertificateParams::default();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join(format!("{name}.pem")), issuer.pem()).unwrap();
        Self {
            dir: dir.to_path_buf(),
            name,
            issuer,
        }
    }

    /// The CA's certificate file.
    pub fn file(&self) -> PathBuf {
        self.dir.join(format!("{}.pem", self.name))
    }

    /// `<file>.pem` and `<file>.key` (mode 0600), made from `params`.
    pub fn issue(&self, file: &str, params: &CertificateParams) -> (PathBuf, PathBuf) {
        use std::os::unix::fs::PermissionsExt as _;
        let key = KeyPair::generate().unwrap();
        let certificate = params.signed_by(&key, &self.issuer).unwrap();
        let cert_file = self.dir.join(format!("{file}.pem"));
        let key_file = self.dir.join(format!("{file}.key"));
        std::fs::write(&cert_file, certificate.pem()).unwrap();
        std::fs::write(&key_file, key.serialize_pem()).unwrap();
        std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
        (cert_file, key_file)
    }

    /// A server certificate for `names` (IP addresses or DNS names).
    pub fn server(&self, file: &str, names: &[&str]) -> (PathBuf, PathBuf) {
        let names: Vec<String> = names.iter().map(|name| (*name).to_owned()).collect();
        self.issue(file, &CertificateParams::new(names).unwrap())
    }

    /// A server certificate for `names` valid from midnight (UTC) of
    /// `from_days` days from now to midnight of `to_days` days from now
    /// (negative: in the past).
    pub fn server_valid(
        &self,
        file: &str,
        names: &[&str],
        from_days: i64,
        to_days: i64,
    ) -> (PathBuf, PathBuf) {
        let names: Vec<String> = names.iter().map(|name| (*name).to_owned()).collect();
        let mut params = CertificateParams::new(names).unwrap();
        let (year, month, day) = date_in(from_days);
        params.not_before = rcgen::date_time_ymd(year, month, day);
        let (year, month, day) = date_in(to_days);
        params.not_after = rcgen::date_time_ymd(year, month, day);
        self.issue(file, &params)
    }

    /// A client certificate whose subject's common name is `name` (as
    /// `openssl req -subj "/CN=name"` makes it).
    pub fn client_files(&self, name: &str) -> (PathBuf, PathBuf) {
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, name);
        self.issue(&format!("{name}-by-{}", self.name), &params)
    }
}

/// The date (UTC) `days` days from now, as year, month and day.
fn date_in(days: i64) -> (i32, u8, u8) {
    let now = std::time::SystemTime::now();
    let shift = std::time::Duration::from_secs(days.unsigned_abs() * 86_400);
    let at = if days < 0 { now - shift } else { now + shift };
    let text = humantime::format_rfc3339_seconds(at).to_string();
    let part = |range: std::ops::Range<usize>| text[range].parse::<u8>().unwrap();
    (text[0..4].parse().unwrap(), part(5..7), part(8..10))
}

/// A free port on `ip`.
pub fn free_port_on(ip: &str) -> u16 {
    std::net::TcpListener::bind((ip, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
