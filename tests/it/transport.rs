//! The URL and transport policy: nothing is sent to a refused address, redirects stay on
//! their host, what a hostile server echoes is scrubbed, plain text and kubeconfig
//! programs are refused through the operator.

use std::{
    io::{ErrorKind, Read, Write},
    net::TcpListener,
    time::Duration,
};

use k8s_openapi::api::core::v1::Secret;
use roster::{
    api::PostgresSslMode,
    connector::{
        Connector as _, ConnectorError, ldap, postgres,
        scim::ScimConnector,
        target::{Network, TargetPolicy},
    },
};
use serde_json::json;

use crate::{
    harness::{self, process, scim},
    lifecycle::Scenario,
};

/// A listener on `host` that has accepted nothing yet.
fn listener(host: &str) -> (TcpListener, u16) {
    let l = TcpListener::bind((host, 0)).expect("bind");
    l.set_nonblocking(true).expect("nonblocking");
    let port = l.local_addr().expect("addr").port();
    (l, port)
}

/// Whether anyone has connected to `l` so far.
fn was_contacted(l: &TcpListener) -> bool {
    match l.accept() {
        Ok(_) => true,
        Err(e) if e.kind() == ErrorKind::WouldBlock => false,
        Err(e) => panic!("accept: {e}"),
    }
}

/// Plain text allowed, loopback not: what a production operator does with a Connector
/// that names a loopback address.
fn refusing() -> Network {
    Network {
        policy: TargetPolicy::default(),
        allow_plaintext: true,
    }
}

fn assert_refused(what: &str, err: ConnectorError, l: &TcpListener) {
    assert_eq!(err.reason(), "TargetRefused", "{what}: {err}");
    assert!(
        !was_contacted(l),
        "{what}: the refused address was contacted"
    );
}

#[tokio::test]
async fn nothing_is_sent_to_a_loopback_address_unless_the_operator_allows_it() {
    let (l, port) = listener("127.0.0.1");
    for host in ["127.0.0.1", "localhost"] {
        let base = format!("http://{host}:{port}/v2");
        let err = match ScimConnector::new(&base, "token", None, &refusing()) {
            Err(e) => e,
            Ok(c) => c.observe("ada").await.expect_err("refused"),
        };
        assert_refused(&format!("SCIM at {host}"), err, &l);
    }
    let dir = ldap::LdapConnector::new(ldap::Settings {
        url: format!("ldap://127.0.0.1:{port}"),
        start_tls: false,
        bind_dn: "cn=x".into(),
        password: "password".into(),
        ca_pem: None,
        users_dn: "ou=p".into(),
        groups_dn: "ou=g".into(),
        disabled_users_dn: "ou=d".into(),
        network: refusing(),
    });
    assert_refused("LDAP", dir.check().await.expect_err("refused"), &l);
    let pg = postgres::PostgresConnector::new(postgres::Settings {
        host: "localhost".into(),
        port,
        database: "postgres".into(),
        user: "roster".into(),
        password: "password".into(),
        ssl_mode: PostgresSslMode::Disable,
        ca_pem: None,
        network: refusing(),
    });
    assert_refused("PostgreSQL", pg.check().await.expect_err("refused"), &l);

    // The same Connector with loopback allowed does connect: the refusal above was the
    // policy's, not a dead port's.
    let c = ScimConnector::new(
        &format!("http://127.0.0.1:{port}/v2"),
        "token",
        None,
        &Network::loopback_plaintext(),
    )
    .expect("connector");
    let _ = tokio::time::timeout(Duration::from_secs(2), c.observe("ada")).await;
    assert!(was_contacted(&l), "loopback allowed, yet not contacted");
}

/// Answers every request on `l` with `response`, for `n` requests, recording what came.
fn serve(l: TcpListener, response: String, n: usize) -> std::thread::JoinHandle<Vec<String>> {
    l.set_nonblocking(false).expect("blocking");
    std::thread::spawn(move || {
        let mut seen = Vec::new();
        for _ in 0..n {
            let Ok((mut socket, _)) = l.accept() else {
                break;
            };
            let _ = socket.set_read_timeout(Some(Duration::from_secs(5)));
            let mut buf = [0u8; 8192];
            let got = socket.read(&mut buf).unwrap_or(0);
            seen.push(String::from_utf8_lossy(&buf[..got]).into_owned());
            let _ = socket.write_all(response.as_bytes());
        }
        seen
    })
}

#[tokio::test]
async fn a_redirect_to_another_host_is_refused_and_not_followed() {
    let (elsewhere, other_port) = listener("127.0.0.2");
    let (l, port) = listener("127.0.0.1");
    let redirect = format!(
        "HTTP/1.1 302 Found\r\nlocation: http://127.0.0.2:{other_port}/latest/meta-data\r\n\
         content-length: 0\r\nconnection: close\r\n\r\n"
    );
    let server = serve(l, redirect, 1);
    let c = ScimConnector::new(
        &format!("http://127.0.0.1:{port}/v2"),
        "secret-token-9d2",
        None,
        &Network::loopback_plaintext(),
    )
    .expect("connector");
    let err = c.observe("ada").await.expect_err("redirect refused");
    assert_eq!(err.reason(), "TargetRefused", "{err}");
    assert!(err.to_string().contains("127.0.0.2"), "{err}");
    assert!(!was_contacted(&elsewhere), "the redirect was followed");
    assert_eq!(server.join().expect("server").len(), 1);
}

#[tokio::test]
async fn what_a_hostile_server_echoes_is_scrubbed() {
    let token = "echoed-token-5be1c";
    let (l, port) = listener("127.0.0.1");
    let body = format!(
        "{{\"detail\": \"Bearer {token} is not welcome\\u001b[31m\\nERROR forged log line\"}}"
    );
    let response = format!(
        "HTTP/1.1 400 Bad Request\r\ncontent-type: application/scim+json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let server = serve(l, response, 1);
    let c = ScimConnector::new(
        &format!("http://127.0.0.1:{port}/v2"),
        token,
        None,
        &Network::loopback_plaintext(),
    )
    .expect("connector");
    let err = c.observe("ada").await.expect_err("400").to_string();
    let seen = server.join().expect("server");
    assert!(seen[0].contains(token), "the token was not sent at all");
    assert!(!err.contains(token), "the token came back: {err}");
    assert!(err.contains("[redacted]"), "{err}");
    assert!(
        !err.chars().any(char::is_control),
        "control characters: {err:?}"
    );
}

#[tokio::test]
async fn plain_text_and_kubeconfig_programs_are_refused_through_the_operator() {
    let s = Scenario::new("transport", json!({})).await;
    let marker = process::temp_dir("roster-exec-").join("ran");
    let nowhere = process::free_port();
    let exec_kubeconfig = format!(
        "apiVersion: v1\nkind: Config\ncurrent-context: x\n\
         clusters: [{{name: c, cluster: {{server: 'https://127.0.0.1:{nowhere}'}}}}]\n\
         contexts: [{{name: x, context: {{cluster: c, user: u}}}}]\n\
         users: [{{name: u, user: {{exec: {{apiVersion: client.authentication.k8s.io/v1, \
         command: /bin/sh, args: ['-c', 'touch {}']}}}}}}]\n",
        marker.display()
    );
    s.apply::<Secret>(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds"},
        "stringData": {"token": scim::TOKEN, "pw": "plain-text-password", "kubeconfig": exec_kubeconfig}}))
        .await;
    let ldap_server = harness::ldap::server();
    let cases = [
        (
            "scim-http",
            json!({"scim": {"baseUrl": scim::tenant("transport"),
                "tokenSecretRef": {"name": "creds", "key": "token"}}}),
            "InsecureTransport",
        ),
        (
            "ldap-plain",
            json!({"ldap": {"url": ldap_server.url(), "bindDn": harness::ldap::ROSTER_DN,
                "bindPasswordSecretRef": {"name": "creds", "key": "pw"},
                "usersDn": harness::ldap::PEOPLE, "groupsDn": harness::ldap::GROUPS,
                "disabledUsersDn": harness::ldap::DISABLED}}),
            "InsecureTransport",
        ),
        (
            "pg-prefer",
            json!({"postgres": {"host": "127.0.0.1", "port": harness::postgres::server().port,
                "username": "roster", "passwordSecretRef": {"name": "creds", "key": "pw"},
                "sslMode": "Prefer"}}),
            "InsecureTransport",
        ),
        (
            "k8s-exec",
            json!({"kubernetes": {"kubeconfigSecretRef": {"name": "creds", "key": "kubeconfig"}}}),
            "InvalidConfig",
        ),
    ];
    s.refused_connectors(&cases, "plain-text-password").await;
    assert!(
        !marker.exists(),
        "the kubeconfig's exec command ran in the operator"
    );
}
