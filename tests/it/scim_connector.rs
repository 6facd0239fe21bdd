//! The SCIM connector against a real scim2-server: the conformance suite, and faults.

use roster::connector::{Connector, ConnectorError, scim::ScimConnector};

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
    let c = ScimConnector::new(&base, scim::TOKEN, None).expect("connector");
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
    let wrong = ScimConnector::new(&base, "not-the-token", None).expect("connector");
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
    let c = ScimConnector::new(&nowhere, "t", None).expect("connector");
    let err = c.observe("ada").await.expect_err("nothing listens there");
    assert!(matches!(err, ConnectorError::Unreachable { .. }), "{err:?}");
    assert_eq!(err.reason(), "Unreachable");
}
