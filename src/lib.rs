//! Roster: a Kubernetes operator that runs the identity lifecycle — joiners, movers,
//! leavers — from declared state.
//!
//! - [`api`]: the `roster.dev/v1alpha1` resources, from which `crds/` is generated.
//! - [`controller`]: one thin loop per kind; the checks they make are pure functions.
//! - [`operator`]: `roster run`, the process that hosts the loops and the probes.

pub mod api;
pub mod connector;
pub mod controller;
pub mod crashpoint;
pub mod fuzzing;
pub mod governance;
pub mod lifecycle;
pub mod operator;
pub mod provision;
pub mod telemetry;
pub mod text;
pub mod time;

#[cfg(test)]
#[path = "layers_tests.rs"]
mod layers_tests;
