//! The PostgreSQL connector against a real server: the conformance suite, and what is
//! particular to roles (identifier safety, the 63-byte limit, sessions ending on disable,
//! drops blocked by owned objects, credentials).

use roster::{
    api::PostgresSslMode,
    connector::{
        Connector, ConnectorError,
        postgres::{PostgresConnector, Settings},
        target::Network,
    },
    lifecycle::{AccountAttributes, DesiredAccount},
};

use crate::{
    conformance::{self, Fixture},
    harness::{postgres, process},
};

fn settings(port: u16, password: &str) -> Settings {
    Settings {
        host: "127.0.0.1".into(),
        port,
        database: "postgres".into(),
        user: postgres::ADMIN.into(),
        password: password.into(),
        ssl_mode: PostgresSslMode::Disable,
        ca_pem: None,
        network: Network::loopback_plaintext(),
    }
}

fn connector() -> PostgresConnector {
    PostgresConnector::new(settings(postgres::server().port, postgres::PASSWORD))
}

struct PgFixture;

#[async_trait::async_trait]
impl Fixture for PgFixture {
    async fn make_entitlement(&self, name: &str) {
        let c = postgres::server().client().await;
        c.batch_execute(&format!("CREATE ROLE \"{name}\" NOLOGIN"))
            .await
            .expect("group role");
    }
    async fn make_unowned_account(&self, username: &str) {
        let c = postgres::server().client().await;
        c.batch_execute(&format!("CREATE ROLE \"{username}\" LOGIN"))
            .await
            .expect("login role");
    }
}

#[tokio::test]
async fn postgres_passes_the_conformance_suite() {
    conformance::run(&connector(), &PgFixture, "pgconf").await;
}

fn desired(username: &str) -> DesiredAccount {
    DesiredAccount {
        username: username.into(),
        kind: Default::default(),
        attributes: AccountAttributes::default(),
        active: true,
        entitlements: Default::default(),
    }
}

#[tokio::test]
async fn names_are_quoted_and_length_checked() {
    let c = connector();
    // A name that would be an injection if spliced into SQL is just an odd role name.
    let odd = "pg odd\"; DROP ROLE roster; --";
    c.create("pg-odd", &desired(odd), true)
        .await
        .expect("create an odd name");
    let seen = c.observe(odd).await.expect("observe").expect("exists");
    assert_eq!(seen.owner.as_deref(), Some("pg-odd"));
    assert!(c.check().await.is_ok(), "the admin role is still there");
    let long = "x".repeat(64);
    match c.create("pg-long", &desired(&long), true).await {
        Err(ConnectorError::Config(m)) => assert!(m.contains("63 bytes"), "{m}"),
        other => panic!("a 64-byte name: {other:?}"),
    }
}

#[tokio::test]
async fn disabling_ends_sessions_and_drops_never_cascade() {
    let c = connector();
    let server = postgres::server();
    c.create("pg-hal", &desired("hal_pg"), true)
        .await
        .expect("create");
    let admin = server.client().await;
    admin
        .batch_execute("ALTER ROLE hal_pg PASSWORD 'hal-pw'")
        .await
        .expect("password");
    let (session, conn) = tokio_postgres::connect(
        &format!(
            "host=127.0.0.1 port={} user=hal_pg password=hal-pw dbname=postgres",
            server.port
        ),
        tokio_postgres::NoTls,
    )
    .await
    .expect("hal logs in");
    let handle = tokio::spawn(conn);
    let hal = c.observe("hal_pg").await.unwrap().unwrap();
    c.set_active(&hal, false).await.expect("disable");
    assert!(
        session.simple_query("SELECT 1").await.is_err(),
        "the open session was ended"
    );
    let _ = handle.await;
    assert!(
        tokio_postgres::connect(
            &format!(
                "host=127.0.0.1 port={} user=hal_pg password=hal-pw dbname=postgres",
                server.port
            ),
            tokio_postgres::NoTls,
        )
        .await
        .is_err(),
        "NOLOGIN refuses new sessions"
    );

    // A role that owns something is not dropped, and nothing it owns is touched.
    let superuser = server.superuser().await;
    superuser
        .batch_execute(
            "CREATE TABLE hal_pg_notes (n int); ALTER TABLE hal_pg_notes OWNER TO hal_pg",
        )
        .await
        .expect("table");
    match c.delete(&hal).await {
        Err(e) => assert!(e.to_string().contains("owns objects"), "{e}"),
        Ok(()) => panic!("a role owning a table was dropped"),
    }
    let still = admin
        .query_one(
            "SELECT count(*) FROM pg_tables WHERE tablename = 'hal_pg_notes'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(still.get::<_, i64>(0), 1);
}

#[tokio::test]
async fn wrong_password_and_no_server_are_clear_errors() {
    let wrong = PostgresConnector::new(settings(postgres::server().port, "not-the-password"));
    let err = wrong.check().await.expect_err("a wrong password must fail");
    assert!(
        matches!(err, ConnectorError::Unauthorized { .. }),
        "{err:?}"
    );
    assert!(!err.to_string().contains("not-the-password"));
    let nowhere = PostgresConnector::new(settings(process::free_port(), "x"));
    let err = nowhere.check().await.expect_err("nothing listens");
    assert!(matches!(err, ConnectorError::Unreachable { .. }), "{err:?}");
}

/// Whether `role` can log in, and its group roles.
pub async fn role_state(
    client: &tokio_postgres::Client,
    role: &str,
) -> Option<(bool, Vec<String>)> {
    let row = client
        .query_opt(
            "SELECT r.rolcanlogin, ARRAY(SELECT g.rolname FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid
                                        WHERE m.member = r.oid ORDER BY 1)
             FROM pg_roles r WHERE r.rolname = $1",
            &[&role],
        )
        .await
        .expect("query")?;
    Some((row.get(0), row.get(1)))
}

#[tokio::test]
async fn joiner_and_leaver_through_the_operator() {
    use kube::{
        Api,
        api::{Patch, PatchParams},
    };
    use roster::api::{Connector, Identity, conditions};

    let server = postgres::server();
    let superuser = server.superuser().await;
    superuser
        .batch_execute("CREATE ROLE e2e_readonly NOLOGIN")
        .await
        .expect("group role");
    let s = crate::lifecycle::Scenario::new("pg-e2e", serde_json::json!({})).await;
    let pp = PatchParams::apply("it").force();
    s.apply::<k8s_openapi::api::core::v1::Secret>(
        serde_json::json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "pg"}, "stringData": {"password": postgres::PASSWORD}}),
    )
    .await;
    s.apply::<Connector>(serde_json::json!({"apiVersion": "roster.dev/v1alpha1", "kind": "Connector",
        "metadata": {"name": "pg"}, "spec": {"allowPlaintext": true, "postgres": {"host": "127.0.0.1", "port": server.port,
        "username": postgres::ADMIN, "passwordSecretRef": {"name": "pg", "key": "password"}, "sslMode": "Disable"}}}))
        .await;
    let entitlements = serde_json::json!([{"connector": "pg", "name": "e2e_readonly"}]);
    s.apply::<roster::api::Role>(
        serde_json::json!({"apiVersion": "roster.dev/v1alpha1", "kind": "Role",
        "metadata": {"name": "db"}, "spec": {"entitlements": entitlements}}),
    )
    .await;
    s.binding(
        "db",
        serde_json::json!({"role": "db", "subjects": {"identities": ["pge-ivy"]}}),
    )
    .await;
    s.identity(
        "pge-ivy",
        serde_json::json!({"username": "pge_ivy", "displayName": "Ivy"}),
    )
    .await;
    s.eventually("ivy can log in and is in e2e_readonly", || async {
        role_state(&superuser, "pge_ivy").await == Some((true, vec!["e2e_readonly".into()]))
    })
    .await;
    s.eventually("ivy Synced, no attribute drift on a database", || async {
        let i: Identity = s.get("pge-ivy").await;
        i.status.is_some_and(|st| {
            conditions::find(&st.conditions, conditions::SYNCED).is_some_and(|c| c.status == "True")
        })
    })
    .await;
    Api::<Identity>::all(s.client.clone())
        .patch("pge-ivy", &pp, &Patch::Apply(serde_json::json!({"apiVersion": "roster.dev/v1alpha1", "kind": "Identity",
            "metadata": {"name": "pge-ivy"}, "spec": {"username": "pge_ivy", "state": "Terminated"}})))
        .await
        .expect("terminate");
    s.eventually("ivy NOLOGIN with no group", || async {
        role_state(&superuser, "pge_ivy").await == Some((false, vec![]))
    })
    .await;
}

#[tokio::test]
async fn tls_is_verified_against_the_ca_bundle() {
    let server = postgres::server();
    let tls = |mode, ca: Option<&str>| {
        let mut s = settings(server.port, postgres::PASSWORD);
        s.ssl_mode = mode;
        s.ca_pem = ca.map(|c| c.as_bytes().to_vec());
        PostgresConnector::new(s)
    };
    for mode in [
        PostgresSslMode::Require,
        PostgresSslMode::VerifyFull,
        PostgresSslMode::Prefer,
    ] {
        let c = tls(mode, Some(&server.ca_pem));
        c.check()
            .await
            .unwrap_or_else(|e| panic!("{mode:?} with the CA: {e}"));
        c.create(
            "pg-tls",
            &desired(&format!("tls_{mode:?}").to_lowercase()),
            true,
        )
        .await
        .expect("a write over TLS");
    }
    // The server's certificate is not from a public CA: without the bundle, no mode
    // that uses TLS falls back to trusting it, and Prefer does not fall back to plain TCP.
    for mode in [PostgresSslMode::Require, PostgresSslMode::Prefer] {
        let err = tls(mode, None)
            .check()
            .await
            .expect_err("untrusted certificate");
        assert!(
            matches!(err, ConnectorError::Unreachable { .. }),
            "{mode:?}: {err:?}"
        );
    }
    let err = tls(PostgresSslMode::Require, Some("not a certificate"))
        .check()
        .await
        .expect_err("a broken bundle");
    assert!(matches!(err, ConnectorError::Config(_)), "{err:?}");
}

#[tokio::test]
async fn the_mark_takes_a_long_identity_name_and_statements_are_bounded() {
    // Identity names run to 253 characters; the mark is a comment (a literal), so it
    // need not fit the 63 bytes of a role name.
    let c = connector();
    let identity = format!("a-very-long-identity-name-{}", "x".repeat(200));
    let desired = DesiredAccount {
        username: "pg.longmark".into(),
        kind: Default::default(),
        attributes: AccountAttributes::default(),
        active: true,
        entitlements: Default::default(),
    };
    c.create(&identity, &desired, true).await.expect("create");
    let seen = c
        .observe("pg.longmark")
        .await
        .expect("observe")
        .expect("the role");
    assert_eq!(seen.owner.as_deref(), Some(identity.as_str()));

    // A lock held elsewhere does not hold Roster forever: its sessions carry a lock
    // timeout, and the call fails with a reason to retry.
    let admin = postgres::server().client().await;
    admin
        .batch_execute("BEGIN; ALTER ROLE \"pg.longmark\" CONNECTION LIMIT 5")
        .await
        .expect("hold the role's row lock");
    let blocked = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        c.set_active(&seen, false),
    )
    .await
    .expect("the call must not wait for the lock forever");
    admin.batch_execute("ROLLBACK").await.expect("release");
    match blocked {
        Err(ConnectorError::Unreachable { reason, .. }) => {
            assert!(reason.starts_with("timed out"), "{reason}");
        }
        other => panic!("expected a lock timeout, got {other:?}"),
    }
    // The pass after it goes through.
    c.set_active(&seen, false).await.expect("disable");
}
