//! How an IdentitySource's rows become Identity fields: columns mapped one to one, and
//! values computed by CEL over the row.

use std::collections::BTreeMap;

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Source columns (JSON fields, LDAP attributes) for each Identity field. Only mapped fields are set by
/// the source; the others are left to whoever else writes the Identity (Git, a person),
/// as server-side apply field managers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[x_kube(validation = Rule::new(COMPUTED_APART)
    .message("a field is either mapped from a column or computed, not both"))]
#[serde(rename_all = "camelCase")]
pub struct FieldMapping {
    /// The column holding the login name. Required: it names the Identity.
    #[schemars(length(min = 1, max = 128))]
    pub username: String,
    /// The column holding the display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// The column holding the given name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub given_name: Option<String>,
    /// The column holding the family name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family_name: Option<String>,
    /// The column holding the primary email address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// The column holding the hire date (`2027-01-04`, midnight UTC, or an RFC 3339
    /// time): it becomes `validFrom`, so the accounts are ready on day one and unusable
    /// before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hire_date: Option<String>,
    /// The column holding the termination date: it becomes `validUntil`. A bare date is
    /// the last day worked, so access ends at the following midnight UTC; an RFC 3339
    /// time is taken as it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub termination_date: Option<String>,
    /// The column holding the manager's username: it becomes the `manager` attribute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manager: Option<String>,
    /// The column holding the worker's status: `Active`, `Suspended` or `Terminated`, or
    /// as HR systems write them (`active`/`true`; `inactive`/`leave`/`suspended`;
    /// `terminated`/`false`/`left`), in any case. Without it every row is `Active`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Attributes, by name, and the column each comes from (e.g. `department:
    /// Department`). An empty cell leaves the attribute unset.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
    /// Fields no single column holds, each computed from the row by a CEL expression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub computed: Option<ComputedFields>,
}

/// The CEL rule that keeps a field from being both mapped and computed: which of the two
/// a person meant cannot be known.
const COMPUTED_APART: &str = "!has(self.computed) || (\
    !(has(self.displayName) && has(self.computed.displayName)) && \
    !(has(self.givenName) && has(self.computed.givenName)) && \
    !(has(self.familyName) && has(self.computed.familyName)) && \
    !(has(self.email) && has(self.computed.email)) && \
    !(has(self.hireDate) && has(self.computed.hireDate)) && \
    !(has(self.terminationDate) && has(self.computed.terminationDate)) && \
    !(has(self.manager) && has(self.computed.manager)) && \
    !(has(self.state) && has(self.computed.state)) && \
    (!has(self.attributes) || !has(self.computed.attributes) || \
     self.computed.attributes.all(k, !(k in self.attributes))))";

/// CEL expressions over the row, one per field, for values no single column holds: a
/// display name from two columns, a department from a code, an email in lower case. The
/// row is `row`, a map of column to cell, with empty cells absent (`has(row.Nickname)`,
/// `row['Cost Center']`). The standard library and the strings extension
/// (`lowerAscii`, `upperAscii`, `trim`, `split`, `substring`, `indexOf`, `charAt`) are
/// there; `replace`, `join`, `format` and `quote` are not, because their results can grow
/// without bound. A string is the value (empty: unset); a bool or number is written as
/// text; `null` leaves the field unset. An expression that fails for a row makes that row
/// unusable, never a guess.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ComputedFields {
    /// The display name, e.g. `row['First Name'] + ' ' + row['Last Name']`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 4096))]
    pub display_name: Option<String>,
    /// The given name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 4096))]
    pub given_name: Option<String>,
    /// The family name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 4096))]
    pub family_name: Option<String>,
    /// The primary email address, e.g. `row.Email.lowerAscii()`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 4096))]
    pub email: Option<String>,
    /// The hire date, as `hireDate` reads a column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 4096))]
    pub hire_date: Option<String>,
    /// The termination date, as `terminationDate` reads a column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 4096))]
    pub termination_date: Option<String>,
    /// The manager's username.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 4096))]
    pub manager: Option<String>,
    /// The worker's status, as `state` reads a column, e.g.
    /// `row['Leave Type'] == 'Sabbatical' ? 'Suspended' : 'Active'`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 4096))]
    pub state: Option<String>,
    /// Attributes, by name, each with its expression.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 64))]
    pub attributes: BTreeMap<String, String>,
}
