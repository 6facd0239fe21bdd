//! The one place Roster reads the clock, so that pure code takes time as an argument.

use k8s_openapi::{apimachinery::pkg::apis::meta::v1::Time, jiff::Timestamp};

/// The current time, as the API's `Time`.
pub fn now() -> Time {
    Time(Timestamp::now())
}
