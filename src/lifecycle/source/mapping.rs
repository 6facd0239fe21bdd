//! One export row → the Identity the source declares for that worker, through the
//! source's field mapping. A row that cannot be mapped is a problem reported against its
//! worker, never a guess. Pure.

use std::collections::BTreeMap;

use k8s_openapi::{
    apimachinery::pkg::apis::meta::v1::Time,
    jiff::{Timestamp, civil::Date, tz::TimeZone},
};

use super::export::Record;
use crate::api::{FieldMapping, IdentityKind, IdentitySpec, LifecycleState};

/// A worker as the source declares them.
#[derive(Clone, Debug, PartialEq)]
pub struct Worker {
    /// The Identity's name, derived from the username.
    pub name: String,
    /// The fields the source sets; the rest are left to other writers.
    pub spec: IdentitySpec,
    /// The row it came from.
    pub row: usize,
}

/// A row that cannot be used. Its worker's Identity, if any, is left as it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RowProblem {
    /// The row.
    pub row: usize,
    /// The Identity the row names, when its username could be read.
    pub identity: Option<String>,
    /// What is wrong, for a person.
    pub message: String,
}

/// The longest username an Identity takes (its schema's limit).
const USERNAME_MAX: usize = 128;

/// Whether `username` is one an Identity accepts (`spec.username`'s pattern).
fn valid_username(username: &str) -> bool {
    let mut chars = username.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    first_ok
        && username.len() <= USERNAME_MAX
        && chars.all(|c| c.is_ascii_alphanumeric() || "._@+-".contains(c))
}

/// The Identity name for a username: lower case, with every character a Kubernetes name
/// cannot hold replaced by `-`. `None` when nothing usable is left.
pub fn identity_name(username: &str) -> Option<String> {
    let name: String = username
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9' | '.' | '-') => c,
            _ => '-',
        })
        .collect();
    let name = name.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    (!name.is_empty() && name.len() <= 253).then(|| name.to_owned())
}

/// A date cell as a time: an RFC 3339 time as it is; a bare date at midnight UTC,
/// of that day (`end` false) or of the next (`end` true: the last day is worked in full).
pub fn parse_date(value: &str, end: bool) -> Option<Timestamp> {
    if let Ok(t) = value.parse::<Timestamp>() {
        return Some(t);
    }
    let date: Date = value.parse().ok()?;
    let day = if end { date.tomorrow().ok()? } else { date };
    day.to_zoned(TimeZone::UTC).ok().map(|z| z.timestamp())
}

/// A state cell, as HR systems write it.
pub fn parse_state(value: &str) -> Option<LifecycleState> {
    match value.to_ascii_lowercase().as_str() {
        "active" | "true" | "yes" | "1" => Some(LifecycleState::Active),
        "suspended" | "inactive" | "leave" | "on leave" => Some(LifecycleState::Suspended),
        "terminated" | "false" | "no" | "0" | "left" => Some(LifecycleState::Terminated),
        _ => None,
    }
}

/// The worker `record` declares, or why it cannot be used.
pub fn map(record: &Record, mapping: &FieldMapping) -> Result<Worker, RowProblem> {
    let row = record.row;
    let problem = |identity: Option<&str>, message: String| RowProblem {
        row,
        identity: identity.map(str::to_owned),
        message,
    };
    let Some(username) = record.cells.get(&mapping.username) else {
        return Err(problem(
            None,
            format!("row {row} has no {:?}", mapping.username),
        ));
    };
    let name = identity_name(username);
    let name_ref = name.as_deref();
    if !valid_username(username) || name.is_none() {
        return Err(problem(
            name_ref,
            format!("row {row}: {username:?} is not a username an Identity takes"),
        ));
    }
    let name = name.unwrap_or_default();
    if let Some(error) = record.errors.first() {
        return Err(problem(
            Some(&name),
            format!("row {row} ({username}): {error}"),
        ));
    }
    if let Some(field) = record.nested.iter().find(|f| used(mapping, f)) {
        return Err(problem(
            Some(&name),
            format!("row {row} ({username}): {field:?} is an object or array, not a value"),
        ));
    }
    let cell = |column: &Option<String>| column.as_ref().and_then(|c| record.cells.get(c));
    let date = |column: &Option<String>, end: bool| -> Result<Option<Time>, RowProblem> {
        let Some(value) = cell(column) else {
            return Ok(None);
        };
        parse_date(value, end).map(|t| Some(Time(t))).ok_or_else(|| {
            problem(
                Some(&name),
                format!("row {row} ({username}): {value:?} is neither a date (2027-01-04) nor an RFC 3339 time"),
            )
        })
    };
    let valid_from = date(&mapping.hire_date, false)?;
    let valid_until = date(&mapping.termination_date, true)?;
    if let (Some(from), Some(until)) = (&valid_from, &valid_until)
        && until.0 <= from.0
    {
        return Err(problem(
            Some(&name),
            format!("row {row} ({username}): the termination date is not after the hire date"),
        ));
    }
    let state = match cell(&mapping.state) {
        None => LifecycleState::Active,
        Some(value) => parse_state(value).ok_or_else(|| {
            problem(
                Some(&name),
                format!("row {row} ({username}): {value:?} is not a worker status Roster knows"),
            )
        })?,
    };
    let mut attributes: BTreeMap<String, String> = mapping
        .attributes
        .iter()
        .filter_map(|(attr, column)| Some((attr.clone(), record.cells.get(column)?.clone())))
        .collect();
    if let Some(manager) = cell(&mapping.manager) {
        attributes.insert("manager".into(), manager.clone());
    }
    let spec = IdentitySpec {
        kind: IdentityKind::Person,
        username: username.clone(),
        owner: None,
        display_name: cell(&mapping.display_name).cloned(),
        given_name: cell(&mapping.given_name).cloned(),
        family_name: cell(&mapping.family_name).cloned(),
        emails: cell(&mapping.email).cloned().into_iter().collect(),
        attributes,
        state,
        valid_from,
        valid_until,
    };
    Ok(Worker { name, spec, row })
}

/// Whether `column` is one the mapping reads.
fn used(mapping: &FieldMapping, column: &str) -> bool {
    columns(mapping).contains(&column)
}

/// Every column the mapping reads, each once: what a directory search asks for.
pub fn columns(mapping: &FieldMapping) -> Vec<&str> {
    let FieldMapping {
        username,
        display_name,
        given_name,
        family_name,
        email,
        hire_date,
        termination_date,
        manager,
        state,
        attributes,
        computed: _,
    } = mapping;
    let optional = [
        display_name,
        given_name,
        family_name,
        email,
        hire_date,
        termination_date,
        manager,
        state,
    ];
    let mut out: Vec<&str> = std::iter::once(username.as_str())
        .chain(optional.into_iter().filter_map(|c| c.as_deref()))
        .chain(attributes.values().map(String::as_str))
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

#[cfg(test)]
#[path = "mapping_tests.rs"]
mod tests;
