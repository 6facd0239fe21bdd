//! Integration tests against a real kube-apiserver and etcd, started once for this
//! binary by [`harness`].

mod approval;
mod argocd;
mod audit;
mod bounds;
mod brownfield;
mod canaries;
mod chart;
mod conformance;
mod connector_faults;
mod crash_points;
mod crds;
mod drift;
mod escalation;
mod examples;
mod four_connectors;
mod governance;
mod harness;
mod hostile_names;
mod kubernetes_connector;
mod kubernetes_tenancy;
mod ldap_connector;
mod leader;
mod leaver_lane;
mod lifecycle;
mod liveness;
mod mass_removal;
mod operator;
mod owner;
mod postgres_connector;
mod receipts;
mod restart;
mod scim_connector;
mod soak;
mod transport;
mod validation;
