//! The `kit` export's old types, for hosts before 0.1.2: they call
//! `kit.check` and `kit.recover` with a `context` that has no deadline and
//! take a `health` that has no `unknown`. The SDK converts both ways so a
//! kit is written once, against [`Context`] and [`Health`].

use crate::deadline::DEADLINE_NOT_TOLD;
use crate::{Context, Health};

/// The WIT `context`: what `kit.check`, `kit.recover` and
/// `inspect.app-settings` receive.
pub(crate) use crate::bindings::medic::kit::types::Context as OldContext;
/// The WIT `health`: what `kit.check` answers.
pub(crate) use crate::bindings::medic::kit::types::Health as OldHealth;

/// The context of an old call, with its deadline "not told", so the wait
/// helpers fall back to the kit's own defaults.
pub(crate) fn upgrade(ctx: OldContext) -> Context {
    Context {
        app: ctx.app,
        settings: ctx.settings,
        attempt: ctx.attempt,
        deadline_ms: DEADLINE_NOT_TOLD,
    }
}

/// The answer for an old host. `unknown` becomes `degraded`, which such a
/// host reports and never acts on: the safe direction, since a check that
/// cannot judge must not lead to a restart.
pub(crate) fn downgrade(health: Health) -> OldHealth {
    match health {
        Health::Healthy => OldHealth::Healthy,
        Health::Degraded(reason) => OldHealth::Degraded(reason),
        Health::Failed(reason) => OldHealth::Failed(reason),
        Health::Unknown(reason) => OldHealth::Degraded(format!("cannot judge: {reason}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Setting;

    #[test]
    fn an_old_context_has_no_deadline() {
        let settings = vec![Setting {
            key: "url".into(),
            value: "http://x/".into(),
        }];
        let old = OldContext {
            app: "web".into(),
            settings: settings.clone(),
            attempt: 2,
        };
        let ctx = upgrade(old);
        assert_eq!((ctx.app.as_str(), ctx.attempt), ("web", 2));
        assert_eq!(ctx.settings, settings);
        assert_eq!(ctx.deadline_ms, DEADLINE_NOT_TOLD);
    }

    #[test]
    fn unknown_is_never_failed_for_an_old_host() {
        assert_eq!(downgrade(Health::Healthy), OldHealth::Healthy);
        assert_eq!(
            downgrade(Health::Degraded("slow".into())),
            OldHealth::Degraded("slow".into())
        );
        assert_eq!(
            downgrade(Health::Failed("down".into())),
            OldHealth::Failed("down".into())
        );
        assert_eq!(
            downgrade(Health::Unknown("no `url`".into())),
            OldHealth::Degraded("cannot judge: no `url`".into())
        );
    }
}
