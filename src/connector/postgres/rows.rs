//! Reading catalog rows without trusting them: a hostile or odd server may answer with a
//! NULL or another type where the catalog promises neither. That is a
//! [`ConnectorError::Malformed`], never a panic.

use tokio_postgres::{Row, types::FromSql};

use crate::{connector::ConnectorError, lifecycle::ObservedAccount};

fn column<'a, T: FromSql<'a>>(row: &'a Row, i: usize) -> Result<T, ConnectorError> {
    row.try_get(i)
        .map_err(|e| ConnectorError::Malformed(format!("column {i}: {e}")))
}

/// A text column that must not be NULL.
pub fn text(row: &Row, i: usize) -> Result<String, ConnectorError> {
    column::<Option<String>>(row, i)?
        .ok_or_else(|| ConnectorError::Malformed(format!("column {i} is NULL")))
}

/// A boolean column that must not be NULL.
pub fn flag(row: &Row, i: usize) -> Result<bool, ConnectorError> {
    column::<Option<bool>>(row, i)?
        .ok_or_else(|| ConnectorError::Malformed(format!("column {i} is NULL")))
}

/// A nullable text column.
pub fn opt_text(row: &Row, i: usize) -> Result<Option<String>, ConnectorError> {
    column(row, i)
}

/// A text array column; NULL reads as empty, a NULL element is malformed.
pub fn names(row: &Row, i: usize) -> Result<Vec<String>, ConnectorError> {
    column::<Option<Vec<Option<String>>>>(row, i)?
        .unwrap_or_default()
        .into_iter()
        .map(|n| n.ok_or_else(|| ConnectorError::Malformed(format!("column {i} holds a NULL"))))
        .collect()
}

/// An account from (name, can login, comment[, groups]).
pub fn account(row: &Row, with_groups: bool) -> Result<ObservedAccount, ConnectorError> {
    let groups = if with_groups {
        names(row, 3)?
    } else {
        Vec::new()
    };
    Ok(super::account(
        text(row, 0)?,
        flag(row, 1)?,
        opt_text(row, 2)?,
        groups,
    ))
}
