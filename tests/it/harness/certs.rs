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

pub fn generate(dir: &Path) -> Pki {
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
    let issuer = Issuer::new(ca, ca_key);

    let serving_key = KeyPair::generate().expect("serving key");
    let mut serving = CertificateParams::new(vec![
        "127.0.0.1".to_owned(),
        "localhost".to_owned(),
        "kubernetes".to_owned(),
        "kubernetes.default.svc".to_owned(),
    ])
    .expect("serving params");
    serving
        .distinguished_name
        .push(DnType::CommonName, "kube-apiserver");
    let serving_cert = serving
        .signed_by(&serving_key, &issuer)
        .expect("serving certificate");

    let sa_key = KeyPair::generate().expect("service-account key");

    let write = |name: &str, pem: &str| {
        let path = dir.join(name);
        fs::write(&path, pem).expect("write PEM");
        path
    };
    Pki {
        ca_cert: write("ca.crt", &ca_cert.pem()),
        ca_pem: ca_cert.pem(),
        serving_cert: write("apiserver.crt", &serving_cert.pem()),
        serving_key: write("apiserver.key", &serving_key.serialize_pem()),
        sa_key: write("sa.key", &sa_key.serialize_pem()),
        sa_pub: write("sa.pub", &sa_key.public_key_pem()),
    }
}
