//! The SCIM connector against a real scim2-server: the conformance suite, and faults.

use roster::connector::{Connector, ConnectorError, scim::ScimConnector, target::Network};

use crate::{
    conformance::{self, Fixture},
    harness::{process, scim},
};

struct ScimFixture(scim::Direct);

#[async_trait::async_trait]
impl Fixture for ScimFixture {
    async fn make_entitlement(&self, name: &str) {
        self.0.group(name).await;
    }
    async fn make_unowned_account(&self, username: &str) {
        self.0.user(username).await;
    }
}

#[tokio::test]
async fn scim_passes_the_conformance_suite() {
    let base = scim::tenant("conformance");
    let c = ScimConnector::new(&base, scim::TOKEN, None, &Network::loopback_plaintext())
        .expect("connector");
    let caps = c.check().await.expect("check");
    assert!(
        caps.features.contains("patch") && caps.features.contains("filter"),
        "{caps:?}"
    );
    conformance::run(&c, &ScimFixture(scim::Direct::new(&base)), "conf").await;
}

#[tokio::test]
async fn wrong_token_and_unreachable_server_are_clear_errors() {
    let base = scim::tenant("faults");
    let wrong = ScimConnector::new(&base, "not-the-token", None, &Network::loopback_plaintext())
        .expect("connector");
    let err = wrong.check().await.expect_err("a wrong token must fail");
    assert!(
        matches!(&err, ConnectorError::Unauthorized { detail } if detail == "HTTP 401"),
        "{err:?}"
    );
    assert!(
        !err.to_string().contains("not-the-token"),
        "the token leaked: {err}"
    );

    let nowhere = format!("http://127.0.0.1:{}/v2", process::free_port());
    let c =
        ScimConnector::new(&nowhere, "t", None, &Network::loopback_plaintext()).expect("connector");
    let err = c.observe("ada").await.expect_err("nothing listens there");
    assert!(matches!(err, ConnectorError::Unreachable { .. }), "{err:?}");
    assert_eq!(err.reason(), "Unreachable");
}

#[tokio::test]
async fn a_user_in_more_groups_than_a_page_holds_is_seen_in_all_of_them() {
    // A leaver in 150 groups must lose all 150: observe reads every page, not the first,
    // on a server that answers at most 40 a page whatever Roster asks for.
    let base = scim::capped_tenant("paging");
    let direct = scim::Direct::new(&base);
    let c = ScimConnector::new(&base, scim::TOKEN, None, &Network::loopback_plaintext())
        .expect("connector");
    let desired = roster::lifecycle::DesiredAccount {
        username: "pg.many".into(),
        kind: Default::default(),
        attributes: Default::default(),
        active: true,
        entitlements: Default::default(),
    };
    let id = c.create("many", &desired, true).await.expect("create");
    for i in 0..150 {
        let group = format!("team-{i:03}");
        direct.group(&group).await;
        c.grant(&id, &group).await.expect("grant");
    }
    let seen = c
        .observe("pg.many")
        .await
        .expect("observe")
        .expect("account");
    assert_eq!(
        seen.entitlements.len(),
        150,
        "{:?}",
        seen.entitlements.len()
    );
}

#[tokio::test]
async fn a_body_past_the_cap_fails_the_call_instead_of_filling_memory() {
    // A loopback server that answers every request with 9 MiB of JSON-ish bytes.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut request = [0u8; 4096];
                let _ = socket.read(&mut request).await;
                let head = "HTTP/1.1 200 OK\r\ncontent-type: application/scim+json\r\nconnection: close\r\n\r\n";
                let _ = socket.write_all(head.as_bytes()).await;
                let chunk = vec![b' '; 1024 * 1024];
                for _ in 0..9 {
                    if socket.write_all(&chunk).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    let c = ScimConnector::new(
        &format!("http://127.0.0.1:{port}/v2"),
        "t",
        None,
        &Network::loopback_plaintext(),
    )
    .expect("connector");
    let err = c.observe("ada").await.expect_err("too large");
    assert!(
        matches!(&err, ConnectorError::Malformed(m) if m.contains("larger than")),
        "{err:?}"
    );
}

/// The member values of group `id`, as the server holds them.
async fn members(direct: &scim::Direct, id: &str) -> Vec<String> {
    let group = direct.get(&format!("/Groups/{id}")).await;
    group["members"]
        .as_array()
        .map(|m| {
            m.iter()
                .filter_map(|v| v["value"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn a_grant_to_a_group_renamed_since_its_id_was_looked_up_fails_and_the_next_finds_the_new_one()
 {
    // Grants reuse a group's id for a few seconds rather than looking the name up each
    // time. A rename in between, with a new group under the old name, must not send the
    // next grant to the renamed group unnoticed, nor keep it going there.
    let base = scim::tenant("renamed");
    let direct = scim::Direct::new(&base);
    let c = ScimConnector::new(&base, scim::TOKEN, None, &Network::loopback_plaintext())
        .expect("connector");
    let desired = |username: &str| roster::lifecycle::DesiredAccount {
        username: username.into(),
        kind: Default::default(),
        attributes: Default::default(),
        active: true,
        entitlements: Default::default(),
    };
    let old = direct.group("staff").await;
    let [ada, bob, cy] = ["ada", "bob", "cy"].map(|n| (n, desired(n)));
    let ada = c.create(ada.0, &ada.1, true).await.expect("create ada");
    let bob = c.create(bob.0, &bob.1, true).await.expect("create bob");
    let cy = c.create(cy.0, &cy.1, true).await.expect("create cy");
    c.grant(&ada, "staff").await.expect("grant ada");

    direct
        .patch(
            &format!("/Groups/{old}"),
            serde_json::json!([{"op": "replace", "path": "displayName", "value": "staff-old"}]),
        )
        .await;
    let new = direct.group("staff").await;
    let err = c
        .grant(&bob, "staff")
        .await
        .expect_err("a grant to the renamed group must not pass as a grant to staff");
    assert!(
        matches!(&err, ConnectorError::Conflict(m) if m.contains("renamed \"staff-old\"")),
        "{err:?}"
    );
    c.grant(&bob, "staff").await.expect("the next grant");
    assert!(members(&direct, &new).await.contains(&bob), "bob in staff");

    // A group deleted and made again under the same name: the remembered id is gone.
    let resp = reqwest::Client::new()
        .delete(format!("{base}/Groups/{new}"))
        .bearer_auth(scim::TOKEN)
        .send()
        .await
        .expect("DELETE");
    assert!(resp.status().is_success(), "{}", resp.status());
    let newest = direct.group("staff").await;
    c.grant(&cy, "staff").await.expect("grant cy");
    assert_eq!(members(&direct, &newest).await, vec![cy.clone()]);
    assert_eq!(members(&direct, &old).await, vec![ada, bob]);
}
