//! The functional core of provisioning. Everything here is pure: no client, no clock.
//!
//! - [`resolve`]: Identities, Roles, RoleBindings → the desired account per connector.
//! - [`plan`]: desired vs observed, through the ownership ledger and the Connector's
//!   policies → the changes to make and the drift to report.
//! - [`audit`]: what caused each change and what reading back found, as evidence.
//! - [`source`]: an HR export → the Identities it declares, within its safeguard.

pub mod audit;
pub mod bounds;
pub mod budget;
pub mod cel_cost;
pub mod expression;
pub mod held;
pub mod inventory;
pub mod model;
pub mod owner;
pub mod plan;
pub mod resolve;
pub mod source;
pub mod subjects;

pub use model::{
    AccountAttributes, ConnectorKey, DesiredAccount, EntitlementMembers, Managed, NameCase,
    ObservedAccount,
};
