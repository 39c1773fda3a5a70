//! Who built a kit: minisign signatures (`kit.wasm.minisig`) checked
//! against the public keys the admin trusts (`[daemon] trusted_keys`).
//!
//! minisign is the format because admins already have its tools (Debian's
//! `minisign` signs, `minisign -V` checks) and its keys are one line. The
//! signature is checked on the very bytes medic then compiles, so nothing
//! can swap the file between the check and the load.
//!
//! The rules, strictest first:
//! - a `.minisig` that cannot be read as a signature, or that a trusted key
//!   made but that does not match the kit's bytes, refuses the kit whatever
//!   `require_signed` says: the file was changed after it was signed;
//! - with `require_signed = true`, a kit without a signature, or signed by a
//!   key that is not trusted, is refused;
//! - otherwise the kit loads, and what is known about its signer is shown.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use minisign_verify::{PublicKey, Signature};

/// The longest `.minisig` or `.pub` file read: real ones are a few hundred
/// bytes, so anything longer is not one.
const KEY_FILE_MAX: u64 = 4096;

/// A minisign key id, printed as `minisign` prints it (upper-case hex, no
/// leading zeros), so an admin can match it with the `.pub` comment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyId(u64);

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}", self.0)
    }
}

/// Why a kit's signature refused it, or why the trusted keys are unusable.
#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    /// `require_signed` is on and the kit has no signature file.
    #[error("no signature {} and require_signed is on (sign it with `minisign -Sm`)", .0.display())]
    Unsigned(PathBuf),
    /// The signature's key is not among `trusted_keys`.
    #[error("signed by key {key_id}, which is not among trusted_keys, and require_signed is on")]
    UnknownKey {
        /// The key that signed.
        key_id: KeyId,
    },
    /// A trusted key signed other bytes than the kit's.
    #[error("signature by trusted key {key_id} ({}) does not match the kit: the file changed after it was signed", key_file.display())]
    Mismatch {
        /// The key that signed.
        key_id: KeyId,
        /// The trusted key's file.
        key_file: PathBuf,
    },
    /// A signature or key file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// A file is not what its place says it is.
    #[error("{}: {what}", path.display())]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        what: String,
    },
    /// A `trusted_keys` pattern matched no file.
    #[error("trusted_keys pattern `{0}` matches no file")]
    NoKeyFile(String),
}

/// Who signed a kit, as far as medic can tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Provenance {
    /// No `.minisig` next to the kit.
    Unsigned,
    /// A trusted key signed exactly these bytes.
    Trusted {
        /// The key.
        key_id: KeyId,
        /// The trusted key's file, which names who holds it.
        key_file: PathBuf,
        /// The signature's trusted comment (minisign puts the time and file
        /// name there); covered by the signature.
        comment: String,
    },
    /// Signed by a key medic does not trust, so nothing is proven.
    UnknownKey {
        /// The key.
        key_id: KeyId,
    },
}

impl Provenance {
    /// The JSON the journal and `kit inspect --json` show.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Provenance::Unsigned => serde_json::json!({"signed": false}),
            Provenance::Trusted {
                key_id,
                key_file,
                comment,
            } => serde_json::json!({
                "signed": true,
                "trusted": true,
                "key_id": key_id.to_string(),
                "key_file": key_file.display().to_string(),
                "comment": comment,
            }),
            Provenance::UnknownKey { key_id } => serde_json::json!({
                "signed": true,
                "trusted": false,
                "key_id": key_id.to_string(),
            }),
        }
    }
}

impl fmt::Display for Provenance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Provenance::Unsigned => f.write_str("unsigned"),
            Provenance::Trusted {
                key_id,
                key_file,
                comment,
            } => write!(
                f,
                "key {key_id} ({}), trusted; {}",
                key_file.display(),
                crate::sandbox::tame_text(comment)
            ),
            Provenance::UnknownKey { key_id } => {
                write!(f, "key {key_id}, not among trusted_keys (unverified)")
            }
        }
    }
}

/// One trusted public key.
#[derive(Debug, Clone)]
struct TrustedKey {
    file: PathBuf,
    id: KeyId,
    key: PublicKey,
}

/// The signature policy of one load of the kits: the keys the admin
/// trusts, read anew at each start and reload so that a key file added or
/// removed takes effect with `medic reload`.
#[derive(Debug, Clone, Default)]
pub struct KitTrust {
    keys: Vec<TrustedKey>,
    required: bool,
}

impl KitTrust {
    /// Reads every key file that `patterns` (absolute glob patterns) match.
    pub fn load(patterns: &[String], required: bool) -> Result<Self, SigningError> {
        let mut keys = Vec::new();
        for pattern in patterns {
            for file in key_files(pattern)? {
                keys.push(read_key(&file)?);
            }
        }
        Ok(Self { keys, required })
    }

    /// Judges the kit at `kit_path`, whose content is `bytes`, by its
    /// signature file `kit_path.minisig`.
    pub fn judge(&self, kit_path: &Path, bytes: &[u8]) -> Result<Provenance, SigningError> {
        let mut name = kit_path.as_os_str().to_owned();
        name.push(".minisig");
        let sig_path = PathBuf::from(name);
        let Some(text) = read_small(&sig_path)? else {
            return if self.required {
                Err(SigningError::Unsigned(sig_path))
            } else {
                Ok(Provenance::Unsigned)
            };
        };
        let malformed = |what: String| SigningError::Malformed {
            path: sig_path.clone(),
            what,
        };
        let signature = Signature::decode(&text)
            .map_err(|e| malformed(format!("not a minisign signature ({e})")))?;
        let key_id = signature_key_id(&text)
            .ok_or_else(|| malformed("not a minisign signature (no key id)".to_owned()))?;
        let Some(trusted) = self.keys.iter().find(|k| k.id == key_id) else {
            return if self.required {
                Err(SigningError::UnknownKey { key_id })
            } else {
                Ok(Provenance::UnknownKey { key_id })
            };
        };
        // Legacy (not prehashed) signatures are from minisign before 0.6;
        // the default has been prehashed for years.
        trusted
            .key
            .verify(bytes, &signature, true)
            .map_err(|_| SigningError::Mismatch {
                key_id,
                key_file: trusted.file.clone(),
            })?;
        Ok(Provenance::Trusted {
            key_id,
            key_file: trusted.file.clone(),
            comment: signature.trusted_comment().to_owned(),
        })
    }
}

/// The files one `trusted_keys` pattern matches, sorted; none is an error,
/// since a pattern that matches nothing is a typo far more often than an
/// empty key directory.
pub fn key_files(pattern: &str) -> Result<Vec<PathBuf>, SigningError> {
    let malformed = |what: String| SigningError::Malformed {
        path: PathBuf::from(pattern),
        what,
    };
    let mut files = glob::glob(pattern)
        .map_err(|e| malformed(format!("not a glob pattern: {e}")))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| SigningError::Read {
            path: e.path().to_owned(),
            source: std::io::Error::new(e.error().kind(), e.error().to_string()),
        })?;
    files.retain(|f| f.is_file());
    files.sort();
    if files.is_empty() {
        return Err(SigningError::NoKeyFile(pattern.to_owned()));
    }
    Ok(files)
}

/// Reads one minisign public key file, checking it is one.
pub fn check_key_file(file: &Path) -> Result<(), SigningError> {
    read_key(file).map(drop)
}

fn read_key(file: &Path) -> Result<TrustedKey, SigningError> {
    let malformed = |what: &str| SigningError::Malformed {
        path: file.to_owned(),
        what: format!("not a minisign public key ({what})"),
    };
    let text = read_small(file)?.ok_or_else(|| SigningError::Read {
        path: file.to_owned(),
        source: std::io::ErrorKind::NotFound.into(),
    })?;
    let key = PublicKey::decode(&text).map_err(|e| malformed(&e.to_string()))?;
    let id = text
        .lines()
        .nth(1)
        .and_then(|line| key_id_at(line, 2))
        .ok_or_else(|| malformed("no key id"))?;
    Ok(TrustedKey {
        file: file.to_owned(),
        id,
        key,
    })
}

/// The key id of a signature file: bytes 2..10 of its second line.
fn signature_key_id(text: &str) -> Option<KeyId> {
    key_id_at(text.lines().nth(1)?, 2)
}

/// The little-endian key id at `offset` of a base64 line, as minisign
/// stores it in both keys and signatures.
fn key_id_at(line: &str, offset: usize) -> Option<KeyId> {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(line.trim())
        .ok()?;
    let id: [u8; 8] = bytes.get(offset..offset + 8)?.try_into().ok()?;
    Some(KeyId(u64::from_le_bytes(id)))
}

/// A small text file, or `None` when there is none; longer files and
/// non-UTF-8 ones are malformed.
fn read_small(path: &Path) -> Result<Option<String>, SigningError> {
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(SigningError::Read {
                path: path.to_owned(),
                source,
            });
        }
    };
    let mut text = String::new();
    file.take(KEY_FILE_MAX + 1)
        .read_to_string(&mut text)
        .map_err(|source| SigningError::Read {
            path: path.to_owned(),
            source,
        })?;
    if text.len() as u64 > KEY_FILE_MAX {
        return Err(SigningError::Malformed {
            path: path.to_owned(),
            what: format!("longer than {KEY_FILE_MAX} bytes"),
        });
    }
    Ok(Some(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A key and its signature of `b"hi\n"`, made with `minisign -G -W` and
    /// `minisign -S -t "built by ops"`.
    const PUBLIC: &str = "untrusted comment: minisign public key 3E406BDDE4BDF6B4\n\
                          RWS09r3k3WtAPnTfzMadi0X7wRvjqznOGlJs0DRk2xPg4Yx4CgNFimQA\n";
    const SIGNATURE: &str = "untrusted comment: signature from minisign secret key\n\
        RUS09r3k3WtAPsVWxcpK5x44q7NAQEOGi5WIP9eFN98Aju21Fladn8i54TDGR2NgNKza0deur4XPbKpzjuWq37V6/79dQBdSXQw=\n\
        trusted comment: built by ops\n\
        6SyC97GDVEFrjHKUVGflDOLIuqyZmQlC0YgYw2p3nyWPI8bKhmGvemQgwGwENPrGF/IS4Dap5BZ1J3fQIDavCA==\n";
    const ID: &str = "3E406BDDE4BDF6B4";

    /// A kit file `kit.wasm` (content irrelevant: the bytes are passed) and,
    /// when given, its signature; and the key in `keys/ops.pub`.
    fn fixture(signature: Option<&str>) -> (tempfile::TempDir, PathBuf, String) {
        let dir = tempfile::tempdir().unwrap();
        let kit = dir.path().join("kit.wasm");
        if let Some(signature) = signature {
            std::fs::write(dir.path().join("kit.wasm.minisig"), signature).unwrap();
        }
        std::fs::create_dir(dir.path().join("keys")).unwrap();
        std::fs::write(dir.path().join("keys/ops.pub"), PUBLIC).unwrap();
        let pattern = dir.path().join("keys/*.pub").display().to_string();
        (dir, kit, pattern)
    }

    /// minisign writes `%PRIX64`: no leading zeros.
    #[test]
    fn a_key_id_with_leading_zeros_prints_as_minisign_prints_it() {
        assert_eq!(KeyId(0x03CD_1F27_90EC_3D09).to_string(), "3CD1F2790EC3D09");
    }

    #[test]
    fn key_ids_read_as_minisign_prints_them() {
        let (_dir, _, pattern) = fixture(None);
        let trust = KitTrust::load(&[pattern], true).unwrap();
        assert_eq!(trust.keys[0].id.to_string(), ID);
        assert_eq!(signature_key_id(SIGNATURE).unwrap().to_string(), ID);
    }

    #[test]
    fn a_trusted_signature_names_its_key_and_comment() {
        let (_dir, kit, pattern) = fixture(Some(SIGNATURE));
        let trust = KitTrust::load(&[pattern], true).unwrap();
        match trust.judge(&kit, b"hi\n").unwrap() {
            Provenance::Trusted {
                key_id, comment, ..
            } => {
                assert_eq!(key_id.to_string(), ID);
                assert_eq!(comment, "built by ops");
            }
            other => panic!("{other:?}"),
        }
        // Other bytes: refused even where signatures are not required.
        let lenient = KitTrust {
            required: false,
            ..trust
        };
        assert!(matches!(
            lenient.judge(&kit, b"hi!\n"),
            Err(SigningError::Mismatch { .. })
        ));
    }

    #[test]
    fn without_trusted_keys_a_signature_is_shown_unverified() {
        let (_dir, kit, _) = fixture(Some(SIGNATURE));
        let provenance = KitTrust::default().judge(&kit, b"anything").unwrap();
        assert_eq!(
            provenance.to_string(),
            format!("key {ID}, not among trusted_keys (unverified)")
        );
        let (_dir, kit, _) = fixture(None);
        assert_eq!(
            KitTrust::default().judge(&kit, b"x").unwrap(),
            Provenance::Unsigned
        );
    }

    #[test]
    fn a_broken_signature_file_refuses_the_kit_even_when_not_required() {
        for text in ["", "untrusted comment: x\nnot base64\n", &"A".repeat(5000)] {
            let (_dir, kit, _) = fixture(Some(text));
            let judged = KitTrust::default().judge(&kit, b"hi\n");
            assert!(
                matches!(judged, Err(SigningError::Malformed { .. })),
                "{text:.40}: {judged:?}"
            );
        }
    }
}
