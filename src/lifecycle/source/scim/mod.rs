//! Roster's SCIM 2.0 endpoint for an `IdentitySource`, its pure part: what it says about
//! itself, filters, attribute paths, PATCH, and a pushed User's way in (checked), out
//! (projected) and into the source's rows (flattened). The HTTP shell is
//! `crate::push`.

pub mod filter;
pub mod patch;
pub mod path;
pub mod resource;
pub mod schema;
