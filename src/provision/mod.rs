//! The imperative shell of provisioning: turning a `Connector` object into a live backend
//! (reading its Secrets), and carrying out a plan downstream with read-back.

pub mod backend;
pub mod cache;
pub mod execute;
pub mod metered;
pub mod secrets;

pub use backend::{ProvisionError, build};
pub use cache::Backends;
