//! A real PostgreSQL server (Debian's) on loopback, started once per test binary: initdb
//! into a temp dir, `postgres` on a free port, and a `roster` role with CREATEROLE and a
//! password, as a Connector would use. Stopped with `pg_ctl stop` when the binary exits.

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::OnceLock,
    time::Duration,
};

use super::{certs, process};

/// The role tests connect as, and its password.
pub const ADMIN: &str = "roster";
pub const PASSWORD: &str = "roster-it-password";

/// A running server.
pub struct Server {
    /// TCP port on 127.0.0.1.
    pub port: u16,
    /// The unix-socket directory (trust auth for the `postgres` superuser).
    socket_dir: PathBuf,
    /// The PEM of the CA that signed the server's TLS certificate.
    pub ca_pem: String,
}

static SERVER: OnceLock<Server> = OnceLock::new();
static SOLE: OnceLock<Server> = OnceLock::new();

fn bin() -> PathBuf {
    let dir = std::env::var_os("ROSTER_POSTGRES_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            panic!(
                "ROSTER_POSTGRES_BIN is not set. Point it at PostgreSQL's server binaries:\n  \
             export ROSTER_POSTGRES_BIN=$(hack/postgres-bin.sh)\n\
             (the README's test command, hack/test.sh, does this)"
            )
        });
    assert!(
        dir.join("initdb").is_file(),
        "no initdb in ROSTER_POSTGRES_BIN={}",
        dir.display()
    );
    dir
}

/// `program args…`, as the `postgres` user when running as root (initdb refuses root).
fn as_postgres(program: &Path, args: &[&str]) -> Command {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"]).arg(program).args(args);
        cmd
    } else {
        let mut cmd = Command::new(program);
        cmd.args(args);
        cmd
    }
}

fn run(mut cmd: Command, what: &str) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The shared server.
pub fn server() -> &'static Server {
    SERVER.get_or_init(start)
}

/// A second server, for the one test that reads every role there is: no other test
/// makes roles on it while it compares.
pub fn sole() -> &'static Server {
    SOLE.get_or_init(start)
}

fn start() -> Server {
    let bin = bin();
    let dir = process::temp_dir("roster-postgres-");
    // A certificate for 127.0.0.1 from a fresh CA, so TLS can be tested too; the
    // server wants its key private to its owner.
    let ca_pem = certs::loopback_server(&dir);
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            dir.join("server.key"),
            std::fs::Permissions::from_mode(0o600),
        )
        .expect("key permissions");
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        run(
            {
                let mut c = Command::new("chown");
                c.args(["-R", "postgres:postgres"]).arg(&dir);
                c
            },
            "chown the data directory",
        );
    }
    let data = dir.join("data");
    let data_s = data.display().to_string();
    let dir_s = dir.display().to_string();
    run(
        as_postgres(
            &bin.join("initdb"),
            &[
                "-D",
                &data_s,
                "-U",
                "postgres",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
            ],
        ),
        "initdb",
    );
    let port = process::free_port();
    let log = dir.join("postgres.log");
    let pid = process::spawn(
        as_postgres(
            &bin.join("postgres"),
            &[
                "-D",
                &data_s,
                "-c",
                "listen_addresses=127.0.0.1",
                "-p",
                &port.to_string(),
                "-k",
                &dir_s,
                "-c",
                "fsync=off",
                "-c",
                "ssl=on",
                "-c",
                &format!("ssl_cert_file={dir_s}/server.crt"),
                "-c",
                &format!("ssl_key_file={dir_s}/server.key"),
            ],
        ),
        &log,
    );
    process::on_exit(as_postgres(
        &bin.join("pg_ctl"),
        &["stop", "-D", &data_s, "-m", "immediate"],
    ));
    let psql_bin = if bin.join("psql").is_file() {
        bin.join("psql")
    } else {
        PathBuf::from("psql")
    };
    let port_s = port.to_string();
    let psql = |sql: &str| {
        as_postgres(
            &psql_bin,
            &[
                "-h",
                &dir_s,
                "-p",
                &port_s,
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-v",
                "ON_ERROR_STOP=1",
                "-qc",
                sql,
            ],
        )
    };
    process::wait_until("postgres", Duration::from_secs(30), &log, pid, || {
        psql("SELECT 1").output().is_ok_and(|o| o.status.success())
    });
    run(
        psql(&format!(
            "CREATE ROLE {ADMIN} LOGIN CREATEROLE PASSWORD '{PASSWORD}'; GRANT pg_signal_backend TO {ADMIN}"
        )),
        "create the roster role",
    );
    Server {
        port,
        socket_dir: dir,
        ca_pem,
    }
}

impl Server {
    /// A connection as the `postgres` superuser, for set-up the `roster` role may not do.
    pub async fn superuser(&self) -> tokio_postgres::Client {
        let (client, conn) = tokio_postgres::Config::new()
            .host_path(&self.socket_dir)
            .port(self.port)
            .user("postgres")
            .dbname("postgres")
            .connect(tokio_postgres::NoTls)
            .await
            .expect("connect as the superuser");
        tokio::spawn(conn);
        client
    }

    /// A connection as the `roster` role, for tests to look and change things directly.
    pub async fn client(&self) -> tokio_postgres::Client {
        let (client, conn) = tokio_postgres::connect(
            &format!(
                "host=127.0.0.1 port={} user={ADMIN} password={PASSWORD} dbname=postgres",
                self.port
            ),
            tokio_postgres::NoTls,
        )
        .await
        .expect("connect to the test PostgreSQL");
        tokio::spawn(conn);
        client
    }
}
