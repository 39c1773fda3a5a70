//! One timeout for every call to every backend, so a hung hypervisor API
//! becomes a retryable [`ErrorKind::Timeout`] instead of a stuck escalation
//! or a stuck unit verb.

use std::time::Duration;

use super::inventory::{CloneSpec, Inventory, VmInfo};
use super::{ErrorKind, Hypervisor, HypervisorError, PowerState};

/// Time a clone has beyond its own deadline to remove what it made, before
/// [`GuardedInventory`] stops waiting for it.
const CLEANUP_GRACE: Duration = Duration::from_secs(120);

/// Waits for `call` at most `timeout`; `backend` and `operation` name the
/// call in the timeout's message.
async fn within<T>(
    backend: &str,
    timeout: Duration,
    operation: &str,
    call: impl Future<Output = Result<T, HypervisorError>>,
) -> Result<T, HypervisorError> {
    tokio::time::timeout(timeout, call)
        .await
        .unwrap_or_else(|_| {
            Err(HypervisorError::new(
                ErrorKind::Timeout,
                format!(
                    "{backend}: no answer to {operation} within {}",
                    humantime::format_duration(timeout)
                ),
            ))
        })
}

/// A backend whose calls each end within `timeout`.
pub struct Guarded {
    backend: Box<dyn Hypervisor>,
    timeout: Duration,
}

impl Guarded {
    /// Bounds every call of `backend` by `timeout`.
    pub fn new(backend: Box<dyn Hypervisor>, timeout: Duration) -> Self {
        Self { backend, timeout }
    }

    async fn bounded<T>(
        &self,
        operation: &str,
        call: impl Future<Output = Result<T, HypervisorError>>,
    ) -> Result<T, HypervisorError> {
        within(self.backend.name(), self.timeout, operation, call).await
    }
}

#[async_trait::async_trait]
impl Hypervisor for Guarded {
    fn name(&self) -> &'static str {
        self.backend.name()
    }

    fn is_dry_run(&self) -> bool {
        self.backend.is_dry_run()
    }

    async fn identify(&self) -> Result<String, HypervisorError> {
        self.bounded("identify", self.backend.identify()).await
    }

    async fn power_state(&self) -> Result<PowerState, HypervisorError> {
        self.bounded("power state", self.backend.power_state())
            .await
    }

    async fn reset(&self) -> Result<String, HypervisorError> {
        self.bounded("reset", self.backend.reset()).await
    }
}

/// An inventory whose calls each end within `timeout`; a clone, which
/// copies disks and may take minutes, within `clone_timeout`.
///
/// A clone is never cut off in the middle by this timeout alone: each
/// backend gives up at `clone_timeout` itself and removes what it made
/// (see [`Inventory::clone_vm`]); this wrapper waits
/// [`CLEANUP_GRACE`] longer, as a last resort against a hypervisor that
/// stopped answering while cleaning up.
pub struct GuardedInventory {
    backend: Box<dyn Inventory>,
    timeout: Duration,
    clone_timeout: Duration,
}

impl GuardedInventory {
    /// Bounds every call of `backend` by `timeout`, and clones by
    /// `clone_timeout` (which the backend was built with) plus a grace to clean up.
    pub fn new(backend: Box<dyn Inventory>, timeout: Duration, clone_timeout: Duration) -> Self {
        Self {
            backend,
            timeout,
            clone_timeout,
        }
    }

    async fn bounded<T>(
        &self,
        operation: &str,
        call: impl Future<Output = Result<T, HypervisorError>>,
    ) -> Result<T, HypervisorError> {
        within(self.backend.name(), self.timeout, operation, call).await
    }
}

#[async_trait::async_trait]
impl Inventory for GuardedInventory {
    fn name(&self) -> &'static str {
        self.backend.name()
    }

    async fn list(&self) -> Result<Vec<VmInfo>, HypervisorError> {
        self.bounded("list", self.backend.list()).await
    }

    async fn power_on(&self, vm: &str) -> Result<String, HypervisorError> {
        self.bounded(&format!("power on {vm}"), self.backend.power_on(vm))
            .await
    }

    async fn shutdown_guest(&self, vm: &str) -> Result<String, HypervisorError> {
        self.bounded(
            &format!("guest shutdown of {vm}"),
            self.backend.shutdown_guest(vm),
        )
        .await
    }

    async fn power_off(&self, vm: &str) -> Result<String, HypervisorError> {
        self.bounded(&format!("power off {vm}"), self.backend.power_off(vm))
            .await
    }

    async fn reset(&self, vm: &str) -> Result<String, HypervisorError> {
        self.bounded(&format!("reset {vm}"), self.backend.reset(vm))
            .await
    }

    async fn clone_vm(&self, template: &str, spec: &CloneSpec) -> Result<VmInfo, HypervisorError> {
        within(
            self.backend.name(),
            self.clone_timeout + CLEANUP_GRACE,
            &format!("clone of {template} as {}", spec.name),
            self.backend.clone_vm(template, spec),
        )
        .await
    }

    async fn destroy(&self, vm: &str) -> Result<String, HypervisorError> {
        self.bounded(&format!("destroy {vm}"), self.backend.destroy(vm))
            .await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// An inventory whose every call takes `delay`.
    struct Slow(Duration);

    #[async_trait::async_trait]
    impl Inventory for Slow {
        fn name(&self) -> &'static str {
            "slow"
        }
        async fn list(&self) -> Result<Vec<VmInfo>, HypervisorError> {
            tokio::time::sleep(self.0).await;
            Ok(Vec::new())
        }
        async fn power_on(&self, _: &str) -> Result<String, HypervisorError> {
            tokio::time::sleep(self.0).await;
            Ok("on".to_owned())
        }
        async fn shutdown_guest(&self, _: &str) -> Result<String, HypervisorError> {
            self.power_on("").await
        }
        async fn power_off(&self, _: &str) -> Result<String, HypervisorError> {
            self.power_on("").await
        }
        async fn reset(&self, _: &str) -> Result<String, HypervisorError> {
            self.power_on("").await
        }
        async fn clone_vm(&self, _: &str, spec: &CloneSpec) -> Result<VmInfo, HypervisorError> {
            tokio::time::sleep(self.0).await;
            Err(HypervisorError::new(ErrorKind::Failed, spec.name.clone()))
        }
        async fn destroy(&self, _: &str) -> Result<String, HypervisorError> {
            self.power_on("").await
        }
    }

    #[tokio::test]
    async fn calls_end_at_their_timeout_and_clones_at_theirs() {
        let guarded = GuardedInventory::new(
            Box::new(Slow(Duration::from_millis(300))),
            Duration::from_millis(50),
            Duration::from_millis(100),
        );
        let err = guarded.power_on("web").await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::Timeout);
        assert_eq!(err.message, "slow: no answer to power on web within 50ms");
        assert_eq!(guarded.list().await.unwrap_err().kind, ErrorKind::Timeout);
        // A clone has its own, longer deadline: it gets the backend's answer.
        let spec = CloneSpec {
            name: "web-01".to_owned(),
            host_name: "web-01".to_owned(),
            ip: None,
            gateway: None,
        };
        let err = guarded.clone_vm("tmpl", &spec).await.unwrap_err();
        assert_eq!(
            (err.kind, err.message.as_str()),
            (ErrorKind::Failed, "web-01")
        );
    }
}
