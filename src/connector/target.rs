//! Where Roster may send credentials. A Connector's author chooses the host, and Roster
//! sends it a token or password: without a policy, anyone who may write a Connector could
//! point it at the cloud metadata service, the node's own ports or the operator's loopback
//! and read the answer back from status (server-side request forgery). So every address a
//! connection is about to use — after DNS, so that a name cannot stand in for a refused
//! address — is checked here, and loopback, link-local, metadata and other non-unicast
//! addresses are refused unless the operator's own `--allow-target-network` flags list
//! them. Private ranges are allowed: that is where most downstream apps live.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    time::Duration,
};

use ipnet::IpNet;

use super::ConnectorError;

/// How a connector may reach its app: the operator's address policy, and whether its
/// Connector opts in to plain text (see [`super::transport`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Network {
    /// Which addresses may be connected to.
    pub policy: TargetPolicy,
    /// The Connector's `allowPlaintext`.
    pub allow_plaintext: bool,
}

impl Network {
    /// Loopback allowed and plain text permitted: a demo or a test on one machine.
    pub fn loopback_plaintext() -> Self {
        Self {
            policy: TargetPolicy::allowing(
                LOOPBACK.iter().filter_map(|n| n.parse().ok()).collect(),
            ),
            allow_plaintext: true,
        }
    }
}

/// The loopback networks, as `--allow-target-network` would name them.
pub const LOOPBACK: [&str; 2] = ["127.0.0.0/8", "::1/128"];

/// The networks Roster may connect to beyond the public and private unicast ranges.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TargetPolicy {
    allowed: Vec<IpNet>,
}

impl TargetPolicy {
    /// A policy that also allows the addresses in `allowed` (e.g. `127.0.0.0/8` for a
    /// demo or test on one machine).
    pub fn allowing(allowed: Vec<IpNet>) -> Self {
        Self { allowed }
    }

    /// Why `ip` may not be connected to, or `None` when it may.
    pub fn refusal(&self, ip: IpAddr) -> Option<&'static str> {
        let ip = canonical(ip);
        if self.allowed.iter().any(|net| net.contains(&ip)) {
            return None;
        }
        restricted(ip)
    }

    /// `ip`, or the error that refuses it; `host` names the target in the message.
    pub fn check(&self, host: &str, ip: IpAddr) -> Result<(), ConnectorError> {
        match self.refusal(ip) {
            None => Ok(()),
            Some(class) => Err(ConnectorError::TargetRefused {
                target: host.to_owned(),
                reason: format!(
                    "{ip} is a {class} address; the operator allows it only with \
                     --allow-target-network"
                ),
            }),
        }
    }

    /// Every address `host` resolves to, each checked: a name that resolves to a refused
    /// address is refused whole, even if it also has others, because a resolver that mixes
    /// them is the rebinding trick this policy exists to stop.
    pub async fn resolve(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, ConnectorError> {
        let unreachable = |reason: String| ConnectorError::Unreachable {
            target: format!("{host}:{port}"),
            reason,
        };
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let addrs: Vec<SocketAddr> = match bare.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) => tokio::net::lookup_host((bare, port))
                .await
                .map_err(|e| unreachable(format!("cannot resolve the host: {e}")))?
                .collect(),
        };
        if addrs.is_empty() {
            return Err(unreachable("the host resolves to no address".into()));
        }
        for addr in &addrs {
            self.check(host, addr.ip())?;
        }
        Ok(addrs)
    }

    /// A TCP connection to `host:port`, at an address this policy allows, trying each in
    /// turn within `timeout`.
    pub async fn connect(
        &self,
        host: &str,
        port: u16,
        timeout: Duration,
    ) -> Result<tokio::net::TcpStream, ConnectorError> {
        let addrs = self.resolve(host, port).await?;
        let mut last = String::from("no address answered");
        for addr in addrs {
            match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr)).await {
                Ok(Ok(stream)) => return Ok(stream),
                Ok(Err(e)) => last = format!("{addr}: {e}"),
                Err(_) => last = format!("{addr}: no answer within {} s", timeout.as_secs()),
            }
        }
        Err(ConnectorError::Unreachable {
            target: format!("{host}:{port}"),
            reason: last,
        })
    }
}

/// An IPv4 address written as IPv6 (`::ffff:169.254.169.254`) is the IPv4 address: the
/// kernel connects to it as such.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

/// The class of address Roster does not connect to by default.
fn restricted(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => restricted_v4(v4),
        IpAddr::V6(v6) => restricted_v6(v6),
    }
}

fn restricted_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, d] = ip.octets();
    if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_link_local() {
        // 169.254.169.254 is the AWS, GCP, Azure and OpenStack metadata service.
        Some("link-local (cloud metadata)")
    } else if ip.is_unspecified() || a == 0 {
        Some("\"this network\"")
    } else if ip.is_multicast() || ip.is_broadcast() || a >= 240 {
        Some("multicast, broadcast or reserved")
    } else if (a, b, c, d) == (100, 100, 100, 200) || (a, b, c) == (192, 0, 0) {
        // Alibaba Cloud's metadata service; 192.0.0.0/24 holds Oracle's and other
        // protocol-assigned addresses.
        Some("cloud metadata")
    } else {
        None
    }
}

fn restricted_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let first = ip.segments()[0];
    if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_unspecified() {
        Some("unspecified")
    } else if first & 0xffc0 == 0xfe80 {
        Some("link-local")
    } else if ip.is_multicast() {
        Some("multicast")
    } else if ip == Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254) {
        Some("cloud metadata")
    } else if let Some(v4) = ip.to_ipv4() {
        // The deprecated IPv4-compatible form (::a.b.c.d) leads to the IPv4 address.
        restricted_v4(v4).filter(|_| first == 0)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn loopback_link_local_and_metadata_are_refused_by_default() {
        let policy = TargetPolicy::default();
        for refused in [
            "127.0.0.1",
            "127.1.2.3",
            "169.254.169.254",
            "100.100.100.200",
            "192.0.0.192",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fe80::1",
            "fd00:ec2::254",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
        ] {
            assert!(
                policy.refusal(ip(refused)).is_some(),
                "{refused} let through"
            );
        }
    }

    #[test]
    fn public_and_private_unicast_are_allowed() {
        let policy = TargetPolicy::default();
        for allowed in [
            "10.0.0.5",
            "172.16.3.4",
            "192.168.1.1",
            "8.8.8.8",
            "100.64.0.1",
            "fd12:3456::1",
            "2001:db8::1",
            "::ffff:10.0.0.5",
        ] {
            assert_eq!(policy.refusal(ip(allowed)), None, "{allowed} refused");
        }
    }

    #[test]
    fn the_operator_may_allow_a_network_and_only_that_network() {
        let policy = TargetPolicy::allowing(vec!["127.0.0.0/8".parse().unwrap()]);
        assert_eq!(policy.refusal(ip("127.0.0.1")), None);
        assert_eq!(policy.refusal(ip("::ffff:127.0.0.1")), None);
        assert!(policy.refusal(ip("::1")).is_some());
        assert!(policy.refusal(ip("169.254.169.254")).is_some());
    }

    #[tokio::test]
    async fn a_name_is_checked_after_it_resolves() {
        let policy = TargetPolicy::default();
        let err = policy.resolve("localhost", 80).await.unwrap_err();
        assert_eq!(err.reason(), "TargetRefused", "{err}");
        assert!(err.to_string().contains("--allow-target-network"), "{err}");
        let err = policy.resolve("[::1]", 80).await.unwrap_err();
        assert_eq!(err.reason(), "TargetRefused", "{err}");
    }
}
