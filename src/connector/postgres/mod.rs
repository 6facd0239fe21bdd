//! PostgreSQL roles: an identity's account is a `LOGIN` role, an entitlement is
//! membership of an existing group role (`GRANT group TO user`), disable is `NOLOGIN`
//! plus ending the role's sessions, and the ownership mark is the role's comment
//! (`roster:<identity>`).
//!
//! Every statement with a name in it is built by PostgreSQL's own `format()` with `%I`
//! (identifiers) and `%L` (literals) from bound parameters: no name is ever spliced into
//! SQL text by Roster. Names over 63 bytes are refused rather than silently truncated.

mod connect;
mod rows;

use std::collections::BTreeSet;

use async_trait::async_trait;
use tokio::sync::Mutex;
use tokio_postgres::{Client, error::SqlState};

pub use self::connect::Settings;
use super::{Capabilities, Connector, ConnectorError, EntitlementMembers, Page, truncate_body};
use crate::lifecycle::{AccountAttributes, DesiredAccount, ObservedAccount};

/// Prefix of Roster's ownership mark in a role's comment.
pub const MARK_PREFIX: &str = "roster:";
/// PostgreSQL truncates identifiers to NAMEDATALEN - 1 bytes.
pub const MAX_NAME_BYTES: usize = 63;
/// Rows per listing page.
const PAGE_SIZE: i64 = 100;

/// A PostgreSQL server's roles.
pub struct PostgresConnector {
    settings: Settings,
    client: Mutex<Option<Client>>,
}

/// Roles that are never accounts or entitlements: the built-in ones.
const NOT_SYSTEM: &str = "r.rolname !~ '^pg_' AND r.rolname <> current_user";

/// An argument to a statement template: a role name (`%I`) or a literal (`%L`).
#[derive(Clone, Copy)]
enum Arg<'a> {
    /// A role name: checked against PostgreSQL's rules for one.
    Role(&'a str),
    /// A literal such as the ownership mark: any length, no NUL.
    Literal(&'a str),
}

impl<'a> Arg<'a> {
    /// The text, as a statement parameter.
    fn value(&self) -> &&'a str {
        match self {
            Arg::Role(s) | Arg::Literal(s) => s,
        }
    }

    fn check(&self) -> Result<(), ConnectorError> {
        match self {
            Arg::Role(name) => check_name(name),
            Arg::Literal(text) if text.contains('\0') => Err(ConnectorError::Config(format!(
                "{:?} cannot be stored in PostgreSQL: it contains NUL",
                truncate_body(text)
            ))),
            Arg::Literal(_) => Ok(()),
        }
    }
}

impl PostgresConnector {
    /// A connector for the server `settings` describe; connects on first use.
    pub fn new(settings: Settings) -> Self {
        Self {
            settings,
            client: Mutex::new(None),
        }
    }

    /// Runs `f` on a live connection, reconnecting when the last one closed.
    async fn with_client<T>(
        &self,
        f: impl AsyncFnOnce(&Client) -> Result<T, tokio_postgres::Error>,
    ) -> Result<T, ConnectorError> {
        let mut guard = self.client.lock().await;
        if guard.as_ref().is_none_or(Client::is_closed) {
            *guard = Some(self.settings.connect().await?);
        }
        let client = guard
            .as_ref()
            .ok_or_else(|| ConnectorError::Config("no connection".into()))?;
        f(client).await.map_err(|e| sql_error(&e))
    }

    /// Runs the statement `format(template, args...)` builds.
    async fn ddl(&self, template: &'static str, args: &[Arg<'_>]) -> Result<(), ConnectorError> {
        self.ddl_all(&[(template, args)]).await
    }

    /// Runs the statements `format` builds from each template and its arguments, in one
    /// transaction: all or nothing. The server quotes every argument (`%I`, `%L`).
    async fn ddl_all(
        &self,
        statements: &[(&'static str, &[Arg<'_>])],
    ) -> Result<(), ConnectorError> {
        for (_, args) in statements {
            for a in *args {
                a.check()?;
            }
        }
        self.with_client(async |c| {
            // Statements sent as one simple query run as one implicit transaction; no
            // explicit BEGIN, which a failure would leave open and aborted.
            let mut sql = Vec::new();
            for (template, args) in statements {
                let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
                    args.iter().map(|a| a.value() as _).collect();
                let placeholders: Vec<String> =
                    (1..=args.len()).map(|i| format!("${i}::text")).collect();
                let row = c
                    .query_one(
                        &format!("SELECT format('{template}', {})", placeholders.join(", ")),
                        &params,
                    )
                    .await?;
                sql.push(row.try_get::<_, String>(0)?);
            }
            c.batch_execute(&sql.join(";\n")).await
        })
        .await
    }

    async fn role_exists(&self, name: &str) -> Result<bool, ConnectorError> {
        self.with_client(async |c| {
            let row = c
                .query_one(
                    "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)",
                    &[&name],
                )
                .await?;
            Ok(row)
        })
        .await
        .and_then(|row| rows::flag(&row, 0))
    }
}

/// The first reason, from `privilege`'s rows, that granting `entitlement` is privileged.
fn privileged_role(
    entitlement: &str,
    rows: &[tokio_postgres::Row],
) -> Result<Option<String>, ConnectorError> {
    const WHAT: [&str; 7] = [
        "has SUPERUSER",
        "has CREATEROLE",
        "has REPLICATION",
        "has BYPASSRLS",
        "can log in (an account, not a group)",
        "is Roster's own role",
        "is a predefined pg_ role",
    ];
    for row in rows {
        let name = rows::text(row, 0)?;
        for (i, what) in WHAT.iter().enumerate() {
            if rows::flag(row, i + 1)? {
                let via = if name == entitlement {
                    String::new()
                } else {
                    format!(" through membership of {name:?}, which")
                };
                return Ok(Some(format!("role {entitlement:?}{via} {what}")));
            }
        }
    }
    Ok(None)
}

/// The cursor after a full page: the last row's name (column 0); `None` after a short one.
fn keyset_next(rows: &[tokio_postgres::Row]) -> Result<Option<String>, ConnectorError> {
    match rows.last() {
        Some(last) if rows.len() as i64 == PAGE_SIZE => rows::text(last, 0).map(Some),
        _ => Ok(None),
    }
}

/// Refuses names PostgreSQL would truncate or cannot hold.
pub fn check_name(name: &str) -> Result<(), ConnectorError> {
    if name.is_empty() || name.len() > MAX_NAME_BYTES || name.contains('\0') {
        return Err(ConnectorError::Config(format!(
            "{:?} cannot be a PostgreSQL role name: it must be 1 to {MAX_NAME_BYTES} bytes without NUL (it is {} bytes)",
            truncate_body(name),
            name.len()
        )));
    }
    if name.starts_with("pg_") {
        return Err(ConnectorError::Config(format!(
            "{:?} cannot be a PostgreSQL role name: names starting with \"pg_\" are reserved",
            truncate_body(name)
        )));
    }
    Ok(())
}

/// A database error in words a person can act on.
fn sql_error(e: &tokio_postgres::Error) -> ConnectorError {
    let Some(db) = e.as_db_error() else {
        return ConnectorError::Unreachable {
            target: "postgres".into(),
            reason: truncate_body(&e.to_string()),
        };
    };
    let detail = db
        .detail()
        .map(|d| format!(" ({})", truncate_body(d)))
        .unwrap_or_default();
    let message = format!("{}{detail}", truncate_body(db.message()));
    match *db.code() {
        SqlState::INVALID_PASSWORD | SqlState::INVALID_AUTHORIZATION_SPECIFICATION => {
            ConnectorError::Unauthorized { detail: message }
        }
        SqlState::INSUFFICIENT_PRIVILEGE => {
            ConnectorError::Config(format!("insufficient privilege: {message}"))
        }
        // statement_timeout or lock_timeout: the server is slow or a lock is held; the
        // pass fails and is retried like any unanswered call.
        SqlState::QUERY_CANCELED | SqlState::LOCK_NOT_AVAILABLE => ConnectorError::Unreachable {
            target: "postgres".into(),
            reason: format!("timed out: {message}"),
        },
        SqlState::DEPENDENT_OBJECTS_STILL_EXIST => ConnectorError::Rejected(format!(
            "the role still owns objects; reassign them first: {message}"
        )),
        _ => ConnectorError::Rejected(message),
    }
}

fn account(
    name: String,
    can_login: bool,
    comment: Option<String>,
    groups: Vec<String>,
) -> ObservedAccount {
    ObservedAccount {
        id: name.clone(),
        owner: comment
            .as_deref()
            .and_then(|c| c.strip_prefix(MARK_PREFIX))
            .map(str::to_owned),
        username: name,
        active: can_login,
        // Roles hold no names or emails: nothing to mirror (see `mirrors_attributes`).
        attributes: AccountAttributes::default(),
        entitlements: groups.into_iter().collect(),
        version: None,
    }
}

#[async_trait]
impl Connector for PostgresConnector {
    fn mirrors_attributes(&self) -> bool {
        false
    }

    async fn check(&self) -> Result<Capabilities, ConnectorError> {
        let (create_role, superuser) = self
            .with_client(async |c| {
                let row = c
                    .query_one(
                        "SELECT rolcreaterole, rolsuper FROM pg_roles WHERE rolname = current_user",
                        &[],
                    )
                    .await?;
                Ok(row)
            })
            .await
            .and_then(|row| Ok((rows::flag(&row, 0)?, rows::flag(&row, 1)?)))?;
        if !create_role && !superuser {
            return Err(ConnectorError::Config(format!(
                "role {:?} lacks CREATEROLE, which Roster needs to manage roles",
                self.settings.user
            )));
        }
        let mut features: BTreeSet<String> = ["createrole".to_owned()].into();
        if superuser {
            features.insert("superuser".into());
        }
        Ok(Capabilities { features })
    }

    async fn observe(&self, username: &str) -> Result<Option<ObservedAccount>, ConnectorError> {
        if check_name(username).is_err() {
            return Ok(None);
        }
        self.with_client(async |c| {
            let row = c
                .query_opt(
                    "SELECT r.rolname, r.rolcanlogin, shobj_description(r.oid, 'pg_authid'),
                            ARRAY(SELECT g.rolname FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid
                                  WHERE m.member = r.oid ORDER BY 1)
                     FROM pg_roles r WHERE r.rolname = $1",
                    &[&username],
                )
                .await?;
            Ok(row)
        })
        .await?
        .map(|r| rows::account(&r, true))
        .transpose()
    }

    async fn list_accounts(
        &self,
        cursor: Option<&str>,
    ) -> Result<Page<ObservedAccount>, ConnectorError> {
        let after = cursor.unwrap_or("").to_owned();
        let rows = self
            .with_client(async |c| {
                // Accounts: roles that can log in, and roles carrying Roster's mark (which
                // may be disabled). Other NOLOGIN roles are groups.
                let sql = format!(
                    "SELECT r.rolname, r.rolcanlogin, shobj_description(r.oid, 'pg_authid')
                     FROM pg_roles r
                     WHERE {NOT_SYSTEM} AND r.rolname > $1
                       AND (r.rolcanlogin OR coalesce(shobj_description(r.oid, 'pg_authid'), '') LIKE 'roster:%')
                     ORDER BY r.rolname LIMIT $2"
                );
                c.query(&sql, &[&after, &PAGE_SIZE]).await
            })
            .await?;
        let next = keyset_next(&rows)?;
        Ok(Page {
            items: rows
                .iter()
                .map(|r| rows::account(r, false))
                .collect::<Result<_, _>>()?,
            next,
        })
    }

    async fn list_entitlements(
        &self,
        cursor: Option<&str>,
    ) -> Result<Page<EntitlementMembers>, ConnectorError> {
        let after = cursor.unwrap_or("").to_owned();
        let rows = self
            .with_client(async |c| {
                let sql = format!(
                    "SELECT r.rolname, ARRAY(SELECT u.rolname FROM pg_auth_members m JOIN pg_roles u ON u.oid = m.member
                                            WHERE m.roleid = r.oid ORDER BY 1)
                     FROM pg_roles r
                     WHERE {NOT_SYSTEM} AND r.rolname > $1 AND NOT r.rolcanlogin
                       AND coalesce(shobj_description(r.oid, 'pg_authid'), '') NOT LIKE 'roster:%'
                     ORDER BY r.rolname LIMIT $2"
                );
                c.query(&sql, &[&after, &PAGE_SIZE]).await
            })
            .await?;
        let next = keyset_next(&rows)?;
        Ok(Page {
            items: rows
                .iter()
                .map(|r| {
                    Ok(EntitlementMembers {
                        name: rows::text(r, 0)?,
                        members: rows::names(r, 1)?,
                    })
                })
                .collect::<Result<_, ConnectorError>>()?,
            next,
        })
    }

    async fn create(
        &self,
        identity: &str,
        desired: &DesiredAccount,
        active: bool,
    ) -> Result<String, ConnectorError> {
        let name = desired.username.as_str();
        let mark = format!("{MARK_PREFIX}{identity}");
        let template = if active {
            "CREATE ROLE %I LOGIN"
        } else {
            "CREATE ROLE %I NOLOGIN"
        };
        // The role and its mark in one transaction: a crash between them would leave a
        // role no one owns under the Identity's username.
        let statements: [(&'static str, &[Arg<'_>]); 2] = [
            (template, &[Arg::Role(name)]),
            (
                "COMMENT ON ROLE %I IS %L",
                &[Arg::Role(name), Arg::Literal(&mark)],
            ),
        ];
        match self.ddl_all(&statements).await {
            Err(ConnectorError::Rejected(body)) if body.contains("already exists") => {
                return Err(ConnectorError::Conflict(format!(
                    "a role {name:?} appeared while Roster was creating it"
                )));
            }
            other => other?,
        }
        Ok(name.to_owned())
    }

    async fn adopt(&self, account: &ObservedAccount, identity: &str) -> Result<(), ConnectorError> {
        self.ddl(
            "COMMENT ON ROLE %I IS %L",
            &[
                Arg::Role(&account.id),
                Arg::Literal(&format!("{MARK_PREFIX}{identity}")),
            ],
        )
        .await
    }

    async fn update(
        &self,
        _account: &ObservedAccount,
        _attributes: &AccountAttributes,
    ) -> Result<(), ConnectorError> {
        Ok(())
    }

    async fn set_active(
        &self,
        account: &ObservedAccount,
        active: bool,
    ) -> Result<(), ConnectorError> {
        if active {
            return self
                .ddl("ALTER ROLE %I LOGIN", &[Arg::Role(&account.id)])
                .await;
        }
        self.ddl("ALTER ROLE %I NOLOGIN", &[Arg::Role(&account.id)])
            .await?;
        // NOLOGIN stops new sessions; a leaver's open ones end too.
        let name = account.id.clone();
        self.with_client(async |c| {
            c.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1",
                &[&name],
            )
            .await
            .map(|_| ())
        })
        .await
    }

    async fn delete(&self, account: &ObservedAccount) -> Result<(), ConnectorError> {
        // Never DROP OWNED: a role that still owns something is reported, not emptied.
        self.ddl("DROP ROLE IF EXISTS %I", &[Arg::Role(&account.id)])
            .await
    }

    async fn grant(&self, account_id: &str, entitlement: &str) -> Result<(), ConnectorError> {
        check_name(entitlement)?;
        if entitlement == self.settings.user {
            // Whatever allowedEntitlements says: membership would hand out Roster's own
            // rights over every role.
            return Err(ConnectorError::Rejected(format!(
                "{entitlement:?} is Roster's own role: never granted"
            )));
        }
        if !self.role_exists(entitlement).await? {
            return Err(ConnectorError::EntitlementNotFound(entitlement.to_owned()));
        }
        self.ddl(
            "GRANT %I TO %I",
            &[Arg::Role(entitlement), Arg::Role(account_id)],
        )
        .await
    }

    fn knows_privilege(&self) -> bool {
        true
    }

    async fn privilege(&self, entitlement: &str) -> Result<Option<String>, ConnectorError> {
        check_name(entitlement)?;
        self.with_client(async |c| {
            // The role and every role it is a member of, however indirectly: a member may
            // SET ROLE to any of them.
            let rows = c
                .query(
                    "WITH RECURSIVE up(oid) AS (
                         SELECT oid FROM pg_roles WHERE rolname = $1
                         UNION SELECT m.roleid FROM pg_auth_members m JOIN up ON m.member = up.oid)
                     SELECT r.rolname, r.rolsuper, r.rolcreaterole, r.rolreplication,
                            r.rolbypassrls, r.rolcanlogin, r.rolname = current_user,
                            starts_with(r.rolname, 'pg_')
                     FROM up JOIN pg_roles r ON r.oid = up.oid ORDER BY r.rolname",
                    &[&entitlement],
                )
                .await?;
            Ok(rows)
        })
        .await
        .and_then(|rows| privileged_role(entitlement, &rows))
    }

    async fn revoke(&self, account_id: &str, entitlement: &str) -> Result<(), ConnectorError> {
        if check_name(entitlement).is_err()
            || !self.role_exists(entitlement).await?
            || !self.role_exists(account_id).await?
        {
            return Ok(());
        }
        self.ddl(
            "REVOKE %I FROM %I",
            &[Arg::Role(entitlement), Arg::Role(account_id)],
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_over_63_bytes_are_refused_not_truncated() {
        assert!(check_name(&"a".repeat(63)).is_ok());
        let err = check_name(&"a".repeat(64)).unwrap_err();
        assert!(err.to_string().contains("1 to 63 bytes"), "{err}");
        // Multi-byte: 32 × 'é' is 64 bytes.
        assert!(check_name(&"é".repeat(32)).is_err());
        assert!(check_name("").is_err());
        assert!(check_name("nul\0byte").is_err());
        assert!(
            check_name("pg_reserved")
                .unwrap_err()
                .to_string()
                .contains("reserved")
        );
    }

    #[test]
    fn the_mark_is_read_from_the_comment() {
        let a = account(
            "ada".into(),
            false,
            Some("roster:ada".into()),
            vec!["readonly".into()],
        );
        assert_eq!((a.owner.as_deref(), a.active), (Some("ada"), false));
        assert_eq!(
            account("x".into(), true, Some("app user".into()), vec![]).owner,
            None
        );
        assert_eq!(account("x".into(), true, None, vec![]).owner, None);
    }
}
