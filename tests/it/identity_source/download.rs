//! An HR export fetched over HTTPS from the HR system, as Workday's report-as-a-service
//! serves one: joiners, a mover and a leaver from the file, and every way a download can
//! go wrong — an error status, a sign-in page, refused credentials, an address the
//! operator does not connect to — refused with nobody deprovisioned.

use std::sync::{Arc, Mutex};

use axum::{
    Router,
    extract::State,
    http::{HeaderMap, StatusCode, header},
    response::IntoResponse,
    routing::get,
};
use k8s_openapi::api::core::v1::Secret;
use roster::api::IdentitySource;
use serde_json::{Value, json};

use super::{active_downstream, all_joined, condition_is, people, scim_scenario, users};
use crate::{
    harness::{certs, process},
    lifecycle::Scenario,
};

/// The integration user and password the export server takes (basic authentication).
const USER: &str = "isu_roster";
const PASSWORD: &str = "it-export-password";

/// What the export server answers: status, content type, body.
type Answer = (StatusCode, &'static str, String);

/// An HTTPS server on loopback answering `GET /ccx/report` with whatever the test sets,
/// to a request signed in as [`USER`]; 401 otherwise.
struct ExportServer {
    answer: Arc<Mutex<Answer>>,
    url: String,
    ca_pem: String,
}

impl ExportServer {
    async fn start() -> Self {
        let dir = process::temp_dir("roster-export-");
        let ca_pem = certs::loopback_server(&dir);
        let acceptor =
            roster::operator::scim::tls::acceptor(&dir.join("server.crt"), &dir.join("server.key"))
                .expect("TLS acceptor");
        let answer = Arc::new(Mutex::new((StatusCode::OK, "text/csv", String::new())));
        let app = Router::new()
            .route("/ccx/report", get(serve))
            .with_state(answer.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        tokio::spawn(roster::operator::scim::tls::serve(
            listener,
            acceptor,
            app,
            std::future::pending(),
        ));
        Self {
            answer,
            url: format!("https://127.0.0.1:{port}/ccx/report?format=csv"),
            ca_pem,
        }
    }

    fn answer(&self, status: StatusCode, content_type: &'static str, body: &str) {
        *self.answer.lock().expect("lock") = (status, content_type, body.to_owned());
    }

    fn csv(&self, body: &str) {
        self.answer(StatusCode::OK, "text/csv", body);
    }
}

async fn serve(State(answer): State<Arc<Mutex<Answer>>>, headers: HeaderMap) -> impl IntoResponse {
    // The header a client signed in as USER sends, as reqwest encodes it.
    let expected = reqwest::Client::new()
        .get("https://127.0.0.1/")
        .basic_auth(USER, Some(PASSWORD))
        .build()
        .expect("request")
        .headers()
        .get(header::AUTHORIZATION)
        .cloned();
    let signed_in = headers.get(header::AUTHORIZATION).is_some()
        && headers.get(header::AUTHORIZATION) == expected.as_ref();
    if !signed_in {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::CONTENT_TYPE, "text/plain")],
            String::new(),
        );
    }
    let (status, content_type, body) = answer.lock().expect("lock").clone();
    (status, [(header::CONTENT_TYPE, content_type)], body)
}

/// The IdentitySource `name` downloading `url` as [`USER`] with `password`, trusting
/// `ca` when given.
async fn download_source(s: &Scenario, name: &str, url: &str, ca: Option<&str>, password: &str) {
    s.apply::<Secret>(json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": format!("{name}-export")},
        "stringData": {"password": password, "ca.crt": ca.unwrap_or_default()}}))
        .await;
    let secret = |key: &str| json!({"name": format!("{name}-export"), "key": key});
    let mut http = json!({"url": url,
        "basicAuth": {"username": USER, "passwordSecretRef": secret("password")}});
    if ca.is_some() {
        http["caSecretRef"] = secret("ca.crt");
    }
    let spec: Value = json!({
        "hrExport": {"format": "Csv", "http": http},
        "pollSeconds": 5,
        "mapping": super::mapping(),
        "safeguard": {"maxRemovals": 1000, "maxPercent": 100, "windowSeconds": 3600}});
    s.apply::<IdentitySource>(json!({"apiVersion": "roster.dev/v1alpha1",
        "kind": "IdentitySource", "metadata": {"name": name}, "spec": spec}))
        .await;
}

async fn department(s: &Scenario, name: &str) -> Option<String> {
    s.get(name).await.spec.attributes.get("department").cloned()
}

#[tokio::test]
async fn an_export_downloaded_over_https_drives_joiners_movers_and_leavers() {
    let s = scim_scenario("hrhttp").await;
    let server = ExportServer::start().await;
    let workers = users("hrhttp", 3);
    server.csv(&people(&workers));
    download_source(&s, "hr", &server.url, Some(&server.ca_pem), PASSWORD).await;
    s.eventually("three joiners from the download", || {
        all_joined(&s, &workers)
    })
    .await;

    // A mover: the export moves the first worker to sales, out of the binding.
    let moved = people(&workers).replacen(
        &format!("{},engineering", workers[0]),
        &format!("{},sales", workers[0]),
        1,
    );
    server.csv(&moved);
    s.eventually("the mover loses the engineering group", || async {
        department(&s, &workers[0]).await.as_deref() == Some("sales")
            && !active_downstream(&s, &workers[0]).await
    })
    .await;

    // A leaver: the last worker's row goes.
    server.csv(&people_but_last(&moved));
    let leaver = workers[2].clone();
    s.eventually("the leaver is deprovisioned", || async {
        s.get(&leaver).await.spec.state == roster::api::LifecycleState::Terminated
            && !active_downstream(&s, &leaver).await
    })
    .await;
    assert!(active_downstream(&s, &workers[1]).await);
}

/// `csv` without its last row.
fn people_but_last(csv: &str) -> String {
    let mut lines: Vec<&str> = csv.lines().collect();
    lines.pop();
    lines.join("\n") + "\n"
}

#[tokio::test]
async fn a_failed_download_is_refused_and_deprovisions_nobody() {
    let s = scim_scenario("hrdlfail").await;
    let server = ExportServer::start().await;
    let workers = users("hrdlfail", 3);
    server.csv(&people(&workers));
    download_source(&s, "hr", &server.url, Some(&server.ca_pem), PASSWORD).await;
    s.eventually("three joiners from the download", || {
        all_joined(&s, &workers)
    })
    .await;

    // Each answer is one an HR system's endpoint gives on a bad day; none is an export.
    let bad_days = [
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            "maintenance",
            "DownstreamError",
        ),
        (
            StatusCode::OK,
            "text/html",
            "<html>\n<body>Sign in</body>\n</html>\n",
            "MalformedResponse",
        ),
    ];
    for (status, content_type, body, reason) in bad_days {
        server.answer(status, content_type, body);
        s.eventually(&format!("HTTP {status} {content_type} is refused"), || {
            condition_is(&s, "hr", "Synced", ("False", reason))
        })
        .await;
        for w in &workers {
            assert!(
                active_downstream(&s, w).await,
                "{w} lost access on {status}"
            );
        }
        server.csv(&people(&workers));
        s.eventually("the download recovers", || {
            condition_is(&s, "hr", "Synced", ("True", "Applied"))
        })
        .await;
    }

    // Refused credentials: said so, and nothing applied.
    download_source(
        &s,
        "hr",
        &server.url,
        Some(&server.ca_pem),
        "not-the-password",
    )
    .await;
    s.eventually("a wrong password is refused", || {
        condition_is(&s, "hr", "Synced", ("False", "Unauthorized"))
    })
    .await;
    assert!(all_joined(&s, &workers).await);
}

#[tokio::test]
async fn a_download_from_the_metadata_address_is_refused_before_connecting() {
    let s = Scenario::new("hrdlssrf", json!({})).await;
    download_source(
        &s,
        "hr",
        "https://169.254.169.254/latest/meta-data/",
        None,
        PASSWORD,
    )
    .await;
    s.eventually("the metadata address is refused", || {
        condition_is(&s, "hr", "Synced", ("False", "TargetRefused"))
    })
    .await;
}
