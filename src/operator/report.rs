//! `roster report`: the governance numbers of the cluster in the current kubeconfig, read
//! from status like the operator's `/metrics`, for people and auditors without Prometheus.

use kube::{Api, Client, api::ListParams};

use super::{Error, ensure_crds};
use crate::{
    api::{Connector, Identity},
    governance::{self, Figures},
};

/// Lists every Identity and Connector and measures them now.
pub async fn measure() -> Result<Figures, Error> {
    let client = Client::try_default().await.map_err(Error::Config)?;
    ensure_crds(&client).await?;
    let lp = ListParams::default();
    let identities = Api::<Identity>::all(client.clone())
        .list(&lp)
        .await
        .map_err(Error::List)?;
    let connectors = Api::<Connector>::all(client)
        .list(&lp)
        .await
        .map_err(Error::List)?;
    Ok(governance::measure(
        &identities.items,
        &connectors.items,
        crate::time::now().0,
    ))
}
