//! A client for a remote cluster from a kubeconfig a Connector's author supplied. A
//! kubeconfig can do more than name a server: `exec` and `auth-provider` run programs in
//! the operator's container, file paths (`tokenFile`, `client-certificate`,
//! `certificate-authority`) read the operator's own files — its ServiceAccount token among
//! them — and send them to whatever server the file names. So only inline credentials
//! are accepted, the server must pass the transport and address policies, and errors
//! never quote the file, which may hold the credentials.

use kube::{
    Client,
    config::{KubeConfigOptions, Kubeconfig, KubeconfigError},
};

use crate::connector::{ConnectorError, target::Network, transport};

fn unusable(what: &str) -> ConnectorError {
    ConnectorError::Config(format!(
        "kubernetes.kubeconfigSecretRef: the kubeconfig is not usable: {what}"
    ))
}

/// The first thing in `config` that would run a program, read a local file or go
/// through a proxy, named for the message.
pub fn forbidden_entry(config: &Kubeconfig) -> Option<String> {
    for named in &config.auth_infos {
        let Some(user) = &named.auth_info else {
            continue;
        };
        let found = [
            (user.exec.is_some(), "exec"),
            (user.auth_provider.is_some(), "auth-provider"),
            (user.token_file.is_some(), "tokenFile"),
            (user.client_certificate.is_some(), "client-certificate"),
            (user.client_key.is_some(), "client-key"),
        ];
        if let Some((_, key)) = found.iter().find(|(set, _)| *set) {
            return Some(format!("user {:?} sets {key}", named.name));
        }
    }
    for named in &config.clusters {
        let Some(cluster) = &named.cluster else {
            continue;
        };
        if cluster.certificate_authority.is_some() {
            return Some(format!(
                "cluster {:?} sets certificate-authority",
                named.name
            ));
        }
        if cluster.proxy_url.is_some() {
            return Some(format!("cluster {:?} sets proxy-url", named.name));
        }
    }
    None
}

/// What went wrong loading a kubeconfig, in words that cannot carry its content: a YAML
/// error quotes the text around it, and the text may be a token.
fn describe(err: &KubeconfigError) -> String {
    match err {
        KubeconfigError::Parse(_) => {
            "it does not parse as a kubeconfig (the parser's message is withheld: it may \
             quote the credentials)"
                .into()
        }
        KubeconfigError::LoadClientKey(_) | KubeconfigError::LoadClientCertificate(_) => {
            "its client certificate or key data is not valid base64 PEM".into()
        }
        KubeconfigError::LoadCertificateAuthority(_) | KubeconfigError::ParseCertificates(_) => {
            "its certificate-authority-data is not valid base64 PEM".into()
        }
        other => other.to_string(),
    }
}

/// A client for the cluster `yaml` describes (its current context), reaching it only as
/// `network` allows.
pub async fn client(yaml: &str, network: &Network) -> Result<Client, ConnectorError> {
    let kubeconfig = Kubeconfig::from_yaml(yaml).map_err(|e| unusable(&describe(&e)))?;
    if let Some(entry) = forbidden_entry(&kubeconfig) {
        return Err(unusable(&format!(
            "{entry}, which would run a program or read a file in the operator's \
             container; give credentials inline (token, client-key-data)"
        )));
    }
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(|e| unusable(&describe(&e)))?;
    let endpoint = transport::kubernetes_server(
        &config.cluster_url.to_string(),
        config.accept_invalid_certs,
        network.allow_plaintext,
    )?;
    // Checked once here: kube's HTTP stack resolves the name again on its own, so a
    // server whose DNS changes afterwards is not caught (see SECURITY.md).
    network
        .policy
        .resolve(&endpoint.host, endpoint.port)
        .await?;
    Client::try_from(config).map_err(|e| unusable(&e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
apiVersion: v1
kind: Config
current-context: c
contexts: [{name: c, context: {cluster: k, user: u}}]
clusters: [{name: k, cluster: {server: "https://10.0.0.1:6443"}}]
"#;

    fn with_user(user: &str) -> Kubeconfig {
        Kubeconfig::from_yaml(&format!("{BASE}users: [{{name: u, user: {user}}}]\n")).unwrap()
    }

    #[test]
    fn programs_and_local_files_are_refused() {
        for user in [
            "{exec: {apiVersion: client.authentication.k8s.io/v1, command: /bin/sh}}",
            "{tokenFile: /var/run/secrets/kubernetes.io/serviceaccount/token}",
            "{client-certificate: /etc/cert, client-key: /etc/key}",
            "{auth-provider: {name: oidc}}",
        ] {
            assert!(
                forbidden_entry(&with_user(user)).is_some(),
                "{user} let through"
            );
        }
        assert_eq!(forbidden_entry(&with_user("{token: abc}")), None);
    }

    #[tokio::test]
    async fn a_broken_kubeconfig_is_described_without_its_content() {
        let yaml = "apiVersion: v1\nusers: [{name: u, user: {token: [canary-7f3a]}}]\n";
        let err = client(yaml, &Network::default()).await.err().unwrap();
        assert!(!err.to_string().contains("canary-7f3a"), "{err}");
        assert_eq!(err.reason(), "InvalidConfig");
    }

    #[tokio::test]
    async fn a_metadata_server_is_refused() {
        let yaml = BASE.replace("https://10.0.0.1:6443", "https://169.254.169.254")
            + "users: [{name: u, user: {token: abc}}]\n";
        let err = client(&yaml, &Network::default()).await.err().unwrap();
        assert_eq!(err.reason(), "TargetRefused", "{err}");
    }
}
