//! Reading a source's backend into records: an HR export from a ConfigMap, people from
//! an LDAP directory, or the users pushed to Roster's SCIM endpoint. What cannot be read
//! is a [`Refused`] read (a condition, and nothing applied); only an apiserver failure is
//! an error worth a retry.

use k8s_openapi::api::core::v1::ConfigMap;
use kube::{Api, ResourceExt, api::ListParams};

use super::report::Refused;
use crate::{
    api::{HrExport, IdentitySource, LdapDirectory, LocalSecretKeyRef, ScimUser},
    connector::{
        ldap::{self, people::PeopleSearch},
        target::Network,
    },
    controller::{Context, Error},
    lifecycle::source::{export::Record, mapping, scim},
    provision::secrets,
};

/// The source's records, or why it cannot be read.
pub async fn records(
    ctx: &Context,
    src: &IdentitySource,
    ns: &str,
) -> Result<Result<Vec<Record>, Refused>, Error> {
    match (&src.spec.hr_export, &src.spec.ldap, &src.spec.scim) {
        (Some(export), _, _) => hr_export(ctx, export, ns).await,
        (None, Some(directory), _) => Ok(directory_people(ctx, src, directory, ns).await),
        (None, None, Some(_)) => pushed(ctx, src, ns).await.map(Ok),
        // The schema refuses a source with none; one from before the rule is told so.
        (None, None, None) => Ok(Err(Refused {
            reason: "NoBackend",
            message: "the source names none of hrExport, ldap or scim".into(),
        })),
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
    export: &HrExport,
    ns: &str,
) -> Result<Result<Vec<Record>, Refused>, Error> {
    let reference = &export.config_map;
    let cm = Api::<ConfigMap>::namespaced(ctx.client.clone(), ns)
        .get_opt(&reference.name)
        .await?;
    let Some(text) = cm.and_then(|cm| cm.data?.remove(&reference.key)) else {
        return Ok(Err(Refused {
            reason: "ExportNotFound",
            message: format!(
                "ConfigMap {:?} has no key {:?} in namespace {ns}; nothing is applied until it does",
                reference.name, reference.key
            ),
        }));
    };
    Ok(
        crate::lifecycle::source::export::parse(&text, export.format).map_err(|e| Refused {
            reason: e.reason(),
            message: format!("{e}; nothing is applied until the export is whole"),
        }),
    )
}

async fn directory_people(
    ctx: &Context,
    src: &IdentitySource,
    directory: &LdapDirectory,
    ns: &str,
) -> Result<Vec<Record>, Refused> {
    let password = secret(
        ctx,
        ns,
        "bindPasswordSecretRef",
        &directory.bind_password_secret_ref,
    )
    .await?;
    let password = String::from_utf8(password).map_err(|_| Refused {
        reason: "SecretInvalid",
        message: "ldap.bindPasswordSecretRef: the password is not UTF-8 text".into(),
    })?;
    let ca_pem = match &directory.ca_secret_ref {
        Some(r) => Some(secret(ctx, ns, "caSecretRef", r).await?),
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
    let attributes = mapping::columns(&src.spec.mapping);
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
        })
        .collect())
}

/// A Secret's value for the field `ldap.{field}`, or why it cannot be read.
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
            message: format!("ldap.{field}: {e}"),
        })
}
