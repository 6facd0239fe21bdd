//! PostgreSQL, against a server of this test's own: every role there is and every
//! membership, with its admin option and grantor. Hostile names reach the server as
//! identifiers in DDL (`CREATE ROLE`, `GRANT … TO …`), where a quote not doubled would be
//! an injection, and a name over 63 bytes would be truncated into another role's.

use roster::{
    api::PostgresSslMode,
    connector::{
        Connector,
        postgres::{PostgresConnector, Settings},
        target::Network,
    },
};

use super::{Downstream, Snapshot, Tally, only_member_added};
use crate::harness::postgres;

struct Pg {
    c: PostgresConnector,
    admin: tokio_postgres::Client,
}

/// A membership as the snapshot holds it.
fn membership(member: &str, admin: bool, grantor: &str) -> String {
    format!("{member} admin={admin} grantor={grantor}")
}

#[async_trait::async_trait]
impl Downstream for Pg {
    fn connector(&self) -> &dyn Connector {
        &self.c
    }

    async fn snapshot(&self) -> Snapshot {
        let roles = self
            .admin
            .query(
                "SELECT rolname, concat_ws(' ', rolsuper, rolinherit, rolcreaterole, rolcreatedb, \
                 rolcanlogin, rolreplication, rolbypassrls, rolconnlimit, rolpassword IS NULL, \
                 rolvaliduntil), coalesce(shobj_description(oid, 'pg_authid'), '') FROM pg_authid",
                &[],
            )
            .await
            .expect("roles");
        let mut out = Snapshot::new();
        for r in roles {
            let attrs = [
                ("flags".to_owned(), [r.get::<_, String>(1)].into()),
                ("comment".to_owned(), [r.get::<_, String>(2)].into()),
            ];
            out.insert(r.get(0), attrs.into());
        }
        let members = self
            .admin
            .query(
                "SELECT g.rolname, m.rolname, am.admin_option, o.rolname FROM pg_auth_members am \
                 JOIN pg_authid g ON g.oid = am.roleid JOIN pg_authid m ON m.oid = am.member \
                 JOIN pg_authid o ON o.oid = am.grantor",
                &[],
            )
            .await
            .expect("memberships");
        for m in members {
            let group: String = m.get(0);
            let value = membership(m.get(1), m.get(2), m.get(3));
            out.get_mut(&group)
                .expect("a member of a role there is")
                .entry("members".to_owned())
                .or_default()
                .insert(value);
        }
        out
    }

    async fn make_entitlement(&self, _i: usize, hostile: &str) -> (String, bool) {
        let quoted = format!("\"{}\"", hostile.replace('"', "\"\""));
        let _refused = self
            .admin
            .batch_execute(&format!("CREATE ROLE {quoted} NOLOGIN"))
            .await;
        let there = self
            .admin
            .query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&hostile])
            .await
            .ok()
            .flatten()
            .is_some();
        (hostile.to_owned(), there)
    }

    fn is_the_grant(
        &self,
        before: &Snapshot,
        after: &Snapshot,
        account: &str,
        _username: &str,
        entitlement: &str,
    ) -> Result<(), String> {
        let value = membership(account, false, postgres::ADMIN);
        only_member_added(before, after, entitlement, "members", &value)
    }
}

#[tokio::test]
async fn hostile_names_change_only_their_own_role_in_postgres() {
    let server = postgres::sole();
    let d = Pg {
        c: PostgresConnector::new(Settings {
            host: "127.0.0.1".into(),
            port: server.port,
            database: "postgres".into(),
            user: postgres::ADMIN.into(),
            password: postgres::PASSWORD.into(),
            ssl_mode: PostgresSslMode::Disable,
            ca_pem: None,
            network: Network::loopback_plaintext(),
        }),
        admin: server.superuser().await,
    };
    let Tally { made, granted } = super::run(&d, 32).await;
    assert!(
        made >= 8 && granted >= 4,
        "too few hostile names went through to test anything: {made} made, {granted} granted of 32"
    );
}
