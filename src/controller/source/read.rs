//! Reading a source's backend into records: an HR export from a ConfigMap or a URL, people from
//! an LDAP directory, or the users pushed to Roster's SCIM endpoint. What cannot be read
//! is a [`Refused`] read (a condition, and nothing applied); only an apiserver failure is
//! an error worth a retry.

use k8s_openapi::api::core::v1::ConfigMap;
use kube::{Api, ResourceExt, api::ListParams};

use super::report::Refused;
use crate::{
    api::{
        ConfigMapKeyRef, ExportDownload, FieldMapping, IdentitySource, LdapDirectory,
        LocalSecretKeyRef, ScimUser,
    },
    connector::{
        ConnectorError,
        ldap::{self, people::PeopleSearch},
        target::Network,
        transport,
        web::download::{self, Credentials, Download},
    },
    controller::{Context, Error},
    lifecycle::source::{computed, export::Record, mapping, scim},
    provision::secrets,
};

/// The source's records, with any computed fields filled in, and the mapping that reads
/// them; or why the source cannot be read.
pub async fn mapped(
    ctx: &Context,
    src: &IdentitySource,
    ns: &str,
) -> Result<Result<(FieldMapping, Vec<Record>), Refused>, Error> {
    let records = match records(ctx, src, ns).await? {
        Ok(records) => records,
        Err(refused) => return Ok(Err(refused)),
    };
    Ok(match computed::expand(&src.spec.mapping, &records) {
        Ok(Some(expanded)) => Ok(expanded),
        Ok(None) => Ok((src.spec.mapping.clone(), records)),
        Err(e) => Err(Refused {
            reason: e.reason(),
            message: format!("{e}; nothing is applied until the mapping is fixed"),
        }),
    })
}

/// The source's records, or why it cannot be read.
async fn records(
    ctx: &Context,
    src: &IdentitySource,
    ns: &str,
) -> Result<Result<Vec<Record>, Refused>, Error> {
    match (&src.spec.hr_export, &src.spec.ldap, &src.spec.scim) {
        (Some(_), _, _) => hr_export(ctx, src, ns).await,
        (None, Some(directory), _) => Ok(directory_people(ctx, src, directory, ns).await),
        (None, None, Some(_)) => pushed(ctx, src, ns).await.map(Ok),
        // The schema refuses a source with none; one from before the rule is told so.
        (None, None, None) => Ok(Err(no_backend())),
    }
}

/// The users pushed to the source over SCIM, oldest first, as rows. None pushed yet is
/// an empty source, which the safeguard holds like an empty export.
async fn pushed(ctx: &Context, src: &IdentitySource, ns: &str) -> Result<Vec<Record>, Error> {
    let name = src.name_any();
    let label = crate::lifecycle::source::label_value(&format!("{ns}/{name}"));
    let selector = format!("{}={label}", crate::lifecycle::source::SOURCE_LABEL);
    let mut users: Vec<ScimUser> = Api::<ScimUser>::namespaced(ctx.client.clone(), ns)
        .list(&ListParams::default().labels(&selector))
        .await?
        .items
        .into_iter()
        .filter(|u| u.spec.source == name)
        .collect();
    users.sort_by_key(|u| {
        (
            u.metadata.creation_timestamp.clone().map(|t| t.0),
            u.name_any(),
        )
    });
    let users: Vec<(String, serde_json::Value)> = users
        .into_iter()
        .map(|u| (u.name_any(), u.spec.resource))
        .collect();
    Ok(scim::resource::rows(&users, src.spec.policy.inactive))
}

async fn hr_export(
    ctx: &Context,
    src: &IdentitySource,
    ns: &str,
) -> Result<Result<Vec<Record>, Refused>, Error> {
    let Some(export) = &src.spec.hr_export else {
        return Ok(Err(no_backend()));
    };
    let text: Result<String, Refused> = match (&export.config_map, &export.http) {
        (Some(reference), _) => config_map_export(ctx, reference, ns).await?,
        (None, Some(download)) => downloaded(ctx, download, ns).await,
        (None, None) => Err(Refused {
            reason: "NoBackend",
            message: "hrExport names neither configMap nor http".to_owned(),
        }),
    };
    Ok(text.and_then(|text| {
        crate::lifecycle::source::export::parse(&text, export.format).map_err(|e| Refused {
            reason: e.reason(),
            message: format!("{e}; nothing is applied until the export is whole"),
        })
    }))
}

async fn config_map_export(
    ctx: &Context,
    reference: &ConfigMapKeyRef,
    ns: &str,
) -> Result<Result<String, Refused>, Error> {
    let cm = Api::<ConfigMap>::namespaced(ctx.client.clone(), ns)
        .get_opt(&reference.name)
        .await?;
    Ok(cm
        .and_then(|cm| cm.data?.remove(&reference.key))
        .ok_or_else(|| Refused {
            reason: "ExportNotFound",
            message: format!(
                "ConfigMap {:?} has no key {:?} in namespace {ns}; nothing is applied until it does",
                reference.name, reference.key
            ),
        }))
}

/// The export downloaded from `download.url`. Anything short of the whole file — an
/// error status, a refused address, a sign-in page, a cut transfer — is refused, and
/// nothing is applied until the download succeeds.
async fn downloaded(ctx: &Context, download: &ExportDownload, ns: &str) -> Result<String, Refused> {
    let refused = |e: ConnectorError| Refused {
        reason: e.reason(),
        message: format!("hrExport.http: {e}; nothing is applied until the export downloads"),
    };
    let url = transport::https_url(&download.url, "hrExport.http.url", download.allow_plaintext)
        .map_err(refused)?;
    let field = |f: &str| format!("hrExport.http.{f}");
    let credentials = match (&download.token_secret_ref, &download.basic_auth) {
        // A token as the SCIM connector takes one: a trailing newline from `echo` is
        // not part of it. A password is taken as it is, as the LDAP connector takes it.
        (Some(r), _) => Some(Credentials::Bearer(
            text_secret(ctx, ns, &field("tokenSecretRef"), r)
                .await?
                .trim()
                .to_owned(),
        )),
        (None, Some(basic)) => Some(Credentials::Basic {
            username: basic.username.clone(),
            password: text_secret(
                ctx,
                ns,
                &field("basicAuth.passwordSecretRef"),
                &basic.password_secret_ref,
            )
            .await?,
        }),
        (None, None) => None,
    };
    let ca_pem = match &download.ca_secret_ref {
        Some(r) => Some(secret(ctx, ns, &field("caSecretRef"), r).await?),
        None => None,
    };
    download::fetch(&Download {
        url: &url,
        credentials: credentials.as_ref(),
        ca_pem: ca_pem.as_deref(),
        policy: ctx.backends.policy(),
    })
    .await
    .map_err(refused)
}

fn no_backend() -> Refused {
    Refused {
        reason: "NoBackend",
        message: "the source names none of hrExport, ldap or scim".into(),
    }
}

async fn directory_people(
    ctx: &Context,
    src: &IdentitySource,
    directory: &LdapDirectory,
    ns: &str,
) -> Result<Vec<Record>, Refused> {
    let password = text_secret(
        ctx,
        ns,
        "ldap.bindPasswordSecretRef",
        &directory.bind_password_secret_ref,
    )
    .await?;
    let ca_pem = match &directory.ca_secret_ref {
        Some(r) => Some(secret(ctx, ns, "ldap.caSecretRef", r).await?),
        None => None,
    };
    let settings = ldap::Settings {
        url: directory.url.clone(),
        start_tls: directory.start_tls,
        bind_dn: directory.bind_dn.clone(),
        password,
        ca_pem,
        users_dn: directory.base_dn.clone(),
        groups_dn: String::new(),
        disabled_users_dn: String::new(),
        network: Network {
            policy: ctx.backends.policy().clone(),
            allow_plaintext: directory.allow_plaintext,
        },
    };
    let read_by_expressions = computed::columns(&src.spec.mapping);
    let mut attributes = mapping::columns(&src.spec.mapping);
    attributes.extend(read_by_expressions.iter().map(String::as_str));
    attributes.sort_unstable();
    attributes.dedup();
    let search = PeopleSearch {
        base_dn: &directory.base_dn,
        filter: &directory.filter,
        disabled_filter: directory.disabled_filter.as_deref(),
        attributes: &attributes,
        page_size: directory.page_size.max(1),
    };
    let entries = ldap::people::people(&settings, &search)
        .await
        .map_err(|e| Refused {
            reason: e.reason(),
            message: format!("{e}; nothing is applied until the directory answers"),
        })?;
    Ok(entries
        .into_iter()
        .enumerate()
        .map(|(i, cells)| Record {
            row: i + 1,
            cells,
            nested: Vec::new(),
            errors: Vec::new(),
        })
        .collect())
}

/// A Secret's value for the spec field `field`, or why it cannot be read.
async fn secret(
    ctx: &Context,
    ns: &str,
    field: &str,
    r: &LocalSecretKeyRef,
) -> Result<Vec<u8>, Refused> {
    secrets::read(&ctx.client, ns, r)
        .await
        .map_err(|e| Refused {
            reason: e.reason(),
            message: format!("{field}: {e}"),
        })
}

/// [`secret`], as text: a password or token.
async fn text_secret(
    ctx: &Context,
    ns: &str,
    field: &str,
    r: &LocalSecretKeyRef,
) -> Result<String, Refused> {
    secrets::read_text(&ctx.client, ns, r)
        .await
        .map_err(|e| Refused {
            reason: e.reason(),
            message: format!("{field}: {e}"),
        })
}
