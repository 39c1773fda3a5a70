//! One timeout for every call to every backend, so a hung hypervisor API
//! becomes a retryable [`ErrorKind::Timeout`] instead of a stuck escalation.

use std::time::Duration;

use super::{ErrorKind, Hypervisor, HypervisorError, PowerState};

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
        tokio::time::timeout(self.timeout, call)
            .await
            .unwrap_or_else(|_| {
                Err(HypervisorError::new(
                    ErrorKind::Timeout,
                    format!(
                        "{}: no answer to {operation} within {}",
                        self.backend.name(),
                        humantime::format_duration(self.timeout)
                    ),
                ))
            })
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
