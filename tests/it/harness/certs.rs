//! Certificates for one test run: a CA, the apiserver's serving certificate and the
//! service-account signing key. Nothing is reused across runs.

use std::{fs, path::Path};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};

/// Paths of the PEM files written for a run.
pub struct Pki {
    pub ca_cert: std::path::PathBuf,
    pub ca_pem: String,
    pub serving_cert: std::path::PathBuf,
    pub serving_key: std::path::PathBuf,
    pub sa_key: std::path::PathBuf,
    pub sa_pub: std::path::PathBuf,
}

/// A fresh CA: its certificate and what signs with it.
fn new_ca() -> (rcgen::Certificate, Issuer<'static, KeyPair>) {
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "roster-test-ca");
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca.self_signed(&ca_key).expect("CA certificate");
    (ca_cert, Issuer::new(ca, ca_key))
}

/// A serving certificate for `names` (and 127.0.0.1) signed by `issuer`, and its key.
fn serving(issuer: &Issuer<'static, KeyPair>, cn: &str, names: &[&str]) -> (String, String) {
    let key = KeyPair::generate().expect("serving key");
    let mut sans = vec!["127.0.0.1".to_owned(), "localhost".to_owned()];
    sans.extend(names.iter().map(|n| (*n).to_owned()));
    let mut params = CertificateParams::new(sans).expect("serving params");
    params.distinguished_name.push(DnType::CommonName, cn);
    let cert = params.signed_by(&key, issuer).expect("serving certificate");
    (cert.pem(), key.serialize_pem())
}

fn write(dir: &Path, name: &str, pem: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    fs::write(&path, pem).expect("write PEM");
    path
}

/// A CA and a loopback serving certificate for a test server, written to `dir` as
/// `ca.crt`, `server.crt` and `server.key`; returns the CA's PEM.
pub fn loopback_server(dir: &Path) -> String {
    let (ca_cert, issuer) = new_ca();
    let (cert, key) = serving(&issuer, "roster-test-server", &[]);
    write(dir, "ca.crt", &ca_cert.pem());
    write(dir, "server.crt", &cert);
    write(dir, "server.key", &key);
    ca_cert.pem()
}

pub fn generate(dir: &Path) -> Pki {
    let (ca_cert, issuer) = new_ca();
    let (serving_cert, serving_key) = serving(
        &issuer,
        "kube-apiserver",
        &["kubernetes", "kubernetes.default.svc"],
    );
    let sa_key = KeyPair::generate().expect("service-account key");
    Pki {
        ca_cert: write(dir, "ca.crt", &ca_cert.pem()),
        ca_pem: ca_cert.pem(),
        serving_cert: write(dir, "apiserver.crt", &serving_cert),
        serving_key: write(dir, "apiserver.key", &serving_key),
        sa_key: write(dir, "sa.key", &sa_key.serialize_pem()),
        sa_pub: write(dir, "sa.pub", &sa_key.public_key_pem()),
    }
}
