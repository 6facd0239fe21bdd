//! A real OpenLDAP `slapd` (Debian's) on loopback, started once per test binary with a
//! private `cn=config` in a temp dir: back_mdb, the memberof and refint overlays, the
//! core/cosine/inetorgperson/nis schemas, a certificate from a fresh test CA for ldaps://
//! and StartTLS, and a `cn=roster` service entry with write access to the people, disabled
//! and groups containers — the permissions the connector docs ask for.

use std::{path::PathBuf, process::Command, sync::OnceLock, time::Duration};

use ldap3::{Ldap, LdapConnAsync};

use super::{certs, process};

pub const SUFFIX: &str = "dc=roster,dc=test";
pub const ADMIN_DN: &str = "cn=admin,dc=roster,dc=test";
const ADMIN_PASSWORD: &str = "admin-it-password";
/// The entry the connector binds as, and its password.
pub const ROSTER_DN: &str = "cn=roster,dc=roster,dc=test";
pub const ROSTER_PASSWORD: &str = "roster-ldap-it-password";
pub const PEOPLE: &str = "ou=people,dc=roster,dc=test";
pub const DISABLED: &str = "ou=disabled,dc=roster,dc=test";
pub const GROUPS: &str = "ou=groups,dc=roster,dc=test";

/// A running server.
pub struct Server {
    /// `ldap://` port on 127.0.0.1 (StartTLS available).
    pub port: u16,
    /// `ldaps://` port on 127.0.0.1.
    pub tls_port: u16,
    /// The PEM of the CA that signed the server's certificate.
    pub ca_pem: String,
}

static SERVER: OnceLock<Server> = OnceLock::new();

fn slapd() -> PathBuf {
    let bin = std::env::var_os("ROSTER_SLAPD")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            panic!(
                "ROSTER_SLAPD is not set. Point it at OpenLDAP's slapd:\n  \
                 export ROSTER_SLAPD=$(hack/slapd-bin.sh)\n\
                 (the README's test command, hack/test.sh, does this)"
            )
        });
    assert!(bin.is_file(), "no slapd at ROSTER_SLAPD={}", bin.display());
    bin
}

/// The directory of slapd's loadable modules (back_mdb, memberof, refint).
fn module_dir() -> &'static str {
    [
        "/usr/lib/ldap",
        "/usr/lib/x86_64-linux-gnu/ldap",
        "/usr/lib/aarch64-linux-gnu/ldap",
    ]
    .into_iter()
    .find(|d| std::path::Path::new(d).join("back_mdb.so").exists())
    .unwrap_or("/usr/lib/ldap")
}

/// `hack/slapd.ldif.in` filled in for a directory in `dir`.
fn config_ldif(dir: &str) -> String {
    [
        ("@DIR@", dir.to_owned()),
        ("@TLS_CA@", format!("{dir}/ca.crt")),
        ("@TLS_CERT@", format!("{dir}/server.crt")),
        ("@TLS_KEY@", format!("{dir}/server.key")),
        ("@MODULES@", module_dir().to_owned()),
        ("@SUFFIX@", SUFFIX.to_owned()),
        ("@ROOT_DN@", ADMIN_DN.to_owned()),
        ("@ROOT_PW@", ADMIN_PASSWORD.to_owned()),
        ("@ROSTER_DN@", ROSTER_DN.to_owned()),
    ]
    .iter()
    .fold(
        include_str!("../../../hack/slapd.ldif.in").to_owned(),
        |text, (name, value)| text.replace(name, value),
    )
}

fn base_ldif() -> String {
    let ou =
        |dn: &str, name: &str| format!("dn: {dn}\nobjectClass: organizationalUnit\nou: {name}\n");
    [
        format!("dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\ndc: roster\no: Roster tests\n"),
        format!(
            "dn: {ROSTER_DN}\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\ncn: roster\nuserPassword: {ROSTER_PASSWORD}\n"
        ),
        ou(PEOPLE, "people"),
        ou(DISABLED, "disabled"),
        ou(GROUPS, "groups"),
    ]
    .join("\n")
}

fn run(mut cmd: Command, what: &str) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The shared server.
pub fn server() -> &'static Server {
    SERVER.get_or_init(|| {
        let slapd = slapd();
        let slapadd = slapd.with_file_name("slapadd");
        let dir = process::temp_dir("roster-slapd-");
        let dir_s = dir.display().to_string();
        let ca_pem = certs::loopback_server(&dir);
        std::fs::create_dir_all(dir.join("config")).expect("config dir");
        std::fs::create_dir_all(dir.join("db")).expect("db dir");
        std::fs::write(dir.join("config.ldif"), config_ldif(&dir_s)).expect("config.ldif");
        std::fs::write(dir.join("base.ldif"), base_ldif()).expect("base.ldif");
        let config = dir.join("config").display().to_string();
        let mut add_config = Command::new(&slapadd);
        add_config
            .args(["-n0", "-F", &config, "-l"])
            .arg(dir.join("config.ldif"));
        run(add_config, "slapadd cn=config");
        let mut add_base = Command::new(&slapadd);
        add_base
            .args(["-n1", "-F", &config, "-l"])
            .arg(dir.join("base.ldif"));
        run(add_base, "slapadd the base entries");

        let (port, tls_port) = (process::free_port(), process::free_port());
        let urls = format!("ldap://127.0.0.1:{port}/ ldaps://127.0.0.1:{tls_port}/");
        let log = dir.join("slapd.log");
        let mut cmd = Command::new(&slapd);
        // `-d` keeps slapd in the foreground, where the harness can stop it.
        cmd.args(["-h", &urls, "-F", &config, "-d", "none"]);
        let pid = process::spawn(cmd, &log);
        process::wait_until("slapd", Duration::from_secs(20), &log, pid, || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
                && std::net::TcpStream::connect(("127.0.0.1", tls_port)).is_ok()
        });
        Server {
            port,
            tls_port,
            ca_pem,
        }
    })
}

impl Server {
    /// `ldap://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.port)
    }

    /// A connection bound as the directory's root DN, for set-up and direct looks.
    pub async fn admin(&self) -> Ldap {
        let (conn, mut ldap) = LdapConnAsync::new(&self.url())
            .await
            .expect("connect to slapd");
        tokio::spawn(conn.drive());
        ldap.simple_bind(ADMIN_DN, ADMIN_PASSWORD)
            .await
            .expect("bind")
            .success()
            .expect("bind as the root DN");
        ldap
    }
}

/// Makes the group an admin would: `groupOfNames` needs a member, so it starts with the
/// empty DN as a placeholder.
pub async fn make_group(name: &str) {
    let mut admin = server().admin().await;
    admin
        .add(
            &format!("cn={},{}", ldap3::dn_escape(name), GROUPS),
            vec![
                ("objectClass".to_owned(), values(&["groupOfNames"])),
                ("cn".to_owned(), values(&[name])),
                ("member".to_owned(), values(&[""])),
            ],
        )
        .await
        .expect("add group")
        .success()
        .expect("group created");
}

fn values(v: &[&str]) -> std::collections::HashSet<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}
