//! Helpers for a kit's own unit tests, which run natively (`cargo test
//! --target <host triple>`) without medic.

use std::fmt::Debug;

use crate::{Context, Health};

/// Asserts that `check` answers [`Health::Unknown`] for each of `cases`, a
/// list of app settings: the test every kit needs that a setting it cannot
/// use never reads as the app being down. `check` gets a test context
/// ([`Context::with_settings`]) with the case's settings; the failure
/// message names the case and the answer.
///
/// ```
/// use medic_kit::{Context, Health};
///
/// fn port(ctx: &Context) -> Result<u16, Health> {
///     Ok(ctx.parse_or("port", 80u16)?)
/// }
///
/// medic_kit::testing::assert_unknown_for(&[&[("port", "eighty")], &[("port", "-1")]], port);
/// ```
pub fn assert_unknown_for<T: Debug>(
    cases: &[&[(&str, &str)]],
    check: impl Fn(&Context) -> Result<T, Health>,
) {
    for pairs in cases {
        let answer = check(&Context::with_settings("app", pairs));
        assert!(
            matches!(answer, Err(Health::Unknown(_))),
            "{pairs:?}: expected unknown, got {answer:?}"
        );
    }
}
