//! The backend that resets nothing: the escalator journals what would be
//! done (`vm_reset` with `"dry_run": true`) and this logs it. The demo's and
//! a new installation's default, so a wrong threshold costs nothing.

use super::{Hypervisor, HypervisorError, PowerState};

/// Pretends to reset the VM.
#[derive(Debug, Clone, Copy, Default)]
pub struct DryRun;

#[async_trait::async_trait]
impl Hypervisor for DryRun {
    fn name(&self) -> &'static str {
        "dry-run"
    }

    fn is_dry_run(&self) -> bool {
        true
    }

    async fn identify(&self) -> Result<String, HypervisorError> {
        Ok("this VM (dry-run: no hypervisor is asked)".to_owned())
    }

    async fn power_state(&self) -> Result<PowerState, HypervisorError> {
        Ok(PowerState::Unknown)
    }

    async fn reset(&self) -> Result<String, HypervisorError> {
        tracing::warn!("dry-run: the VM would be reset now");
        Ok("dry-run: nothing was reset".to_owned())
    }
}
