//! Host-side bindings of the `medic:kit` WIT package.
//!
//! Generated once here so the rest of the sandbox names the WIT types through
//! one path. `exec` and `run` are async because they wait for a child process and must be
//! cancellable at the call's deadline; every other import is a quick,
//! synchronous host call.
#![allow(missing_docs)] // generated code; the WIT documents every item

wasmtime::component::bindgen!({
    world: "recovery-kit",
    path: "../wit",
    imports: {
        "medic:kit/host.exec": async,
        "medic:kit/host.run": async,
        "medic:kit/host.http-get": async,
        "medic:kit/host.http-send": async,
        "medic:kit/host.tls-connect": async,
        "medic:kit/host.[method]tls-stream.send": async,
        "medic:kit/host.[method]tls-stream.recv": async,
        default: trappable,
    },
    exports: { default: async },
    with: { "medic:kit/host.tls-stream": super::tls_socket::KitTls },
    additional_derives: [PartialEq, Eq],
});

pub use self::exports::medic::kit::kit::{Context, Health, KitInfo, NextStep};
pub use self::medic::kit::types::{
    CallContext, Capability, ExecOutput, ExecRequest, HttpAnswer, HttpAuth, HttpRequest,
    HttpResponse, Level, PeerCertificate, Setting, SettingDoc, Verdict,
};

impl From<Health> for Verdict {
    /// What a kit built before 0.1.2 answers, as a 0.1.2 verdict.
    fn from(health: Health) -> Self {
        match health {
            Health::Healthy => Verdict::Healthy,
            Health::Degraded(reason) => Verdict::Degraded(reason),
            Health::Failed(reason) => Verdict::Failed(reason),
        }
    }
}

impl From<&CallContext> for Context {
    /// The context of a kit built before 0.1.2: the same without the
    /// deadline.
    fn from(ctx: &CallContext) -> Self {
        Context {
            app: ctx.app.clone(),
            settings: ctx.settings.clone(),
            attempt: ctx.attempt,
        }
    }
}
