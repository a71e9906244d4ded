//! Exit codes: errors that are the user's to fix (usage, invalid policy) exit 2.
use crate::UsageError;

/// Exit code for an error chain: 2 for usage errors and invalid policies, else 1.
pub fn exit_code(err: &anyhow::Error) -> u8 {
    let user_fault = err
        .chain()
        .any(|e| e.is::<UsageError>() || e.is::<crate::policy::PolicyErrors>());
    if user_fault {
        2
    } else {
        1
    }
}
