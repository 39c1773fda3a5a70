//! Fixtures of the vSphere tests: govmomi's simulator, a named fake of the
//! REST API, and settings and credentials for both.
#![allow(dead_code)]

pub mod rest_fake;
pub mod vcsim;

use std::path::PathBuf;

use medic::config::{VmSelector, VsphereApi, VsphereSettings};
use medic::credentials::{Credentials, Source};
use secrecy::SecretString;

/// The user the simulator and the fake accept.
pub const USER: &str = "medic";
/// Their password; XML and shell specials make sure it is escaped on the way.
pub const PASSWORD: &str = r#"s3<cr&t>"'x"#;

/// The right credentials.
pub fn credentials() -> Credentials {
    Credentials {
        username: USER.to_string(),
        password: SecretString::from(PASSWORD),
    }
}

/// Credentials with a wrong password.
pub fn wrong_credentials() -> Credentials {
    Credentials {
        username: USER.to_string(),
        password: SecretString::from("wrong"),
    }
}

/// Settings for `url` with everything else defaulted (no CA file, verification on).
pub fn settings(url: &str, api: VsphereApi, vm: VmSelector) -> VsphereSettings {
    VsphereSettings {
        url: url.to_string(),
        api,
        vm,
        credentials: Source::File(PathBuf::from("/nonexistent/credentials")),
        ca_file: None,
        insecure: false,
        dmi_uuid_file: PathBuf::from("/nonexistent/product_uuid"),
    }
}
