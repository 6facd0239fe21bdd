//! Integration tests against a real kube-apiserver and etcd, started once for this
//! binary by [`harness`].

mod crds;
mod examples;
mod harness;
mod operator;
mod validation;
