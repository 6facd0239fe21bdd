//! The `roster` command.

use std::{io::Write, net::SocketAddr, process::ExitCode};

use clap::{Parser, Subcommand};
use roster::{governance, operator, telemetry};

/// jemalloc, for what glibc's arenas did not hand back (Cargo.toml says why).
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Roster runs the identity lifecycle of an organisation from declared state.
#[derive(Debug, Parser)]
#[command(name = "roster", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print every Roster CRD as multi-document YAML (`roster crds | kubectl apply -f -`).
    Crds,
    /// Print the admission policies that stop escalation through Roster (`bind` on a
    /// Role to bind it, `grant` on a Connector to grant through it) and their bindings.
    AdmissionPolicy,
    /// Run the operator against the cluster of the current kubeconfig, or in-cluster.
    Run {
        /// Address for /healthz, /readyz and /metrics.
        #[arg(long, env = "ROSTER_PROBE_ADDR", default_value = "0.0.0.0:8080")]
        probe_addr: SocketAddr,
        /// Log line format; the level comes from RUST_LOG (default info).
        #[arg(long, env = "ROSTER_LOG_FORMAT", value_enum, default_value_t = telemetry::LogFormat::Text)]
        log_format: telemetry::LogFormat,
        /// Elect a leader on a Lease, so that replicas can run and only one acts
        /// (`--leader-elect=false` for a single process that never waits for a Lease).
        #[arg(long, env = "ROSTER_LEADER_ELECT", default_value_t = true, action = clap::ArgAction::Set)]
        leader_elect: bool,
        /// The namespace of the leader Lease (in a cluster: the operator's own).
        #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
        leader_elect_namespace: String,
        /// The name of the leader Lease.
        #[arg(
            long,
            env = "ROSTER_LEADER_ELECT_LEASE",
            default_value = "roster-operator"
        )]
        leader_elect_lease: String,
        /// A network (CIDR) downstream apps may be reached in although it is refused by
        /// default: loopback, link-local, cloud metadata. Repeat, or separate with commas
        /// (e.g. `127.0.0.0/8` for a demo on one machine).
        #[arg(
            long = "allow-target-network",
            env = "ROSTER_ALLOW_TARGET_NETWORKS",
            value_delimiter = ','
        )]
        allow_target_networks: Vec<ipnet::IpNet>,
        /// How long a Service identity keeps its access once its owner has left or is
        /// gone, for someone to take it over; then its accounts are disabled until a new
        /// owner is set. Seconds; default 7 days.
        #[arg(long, env = "ROSTER_OWNER_GRACE_SECONDS", default_value_t = 7 * 24 * 3600)]
        owner_grace_seconds: u32,
        /// Serve the SCIM 2.0 endpoint that HR systems and IdPs push IdentitySources'
        /// people to, on this address (e.g. `0.0.0.0:8443`); off when unset. It needs
        /// `--scim-tls-cert` and `--scim-tls-key`, or `--scim-plaintext`.
        #[arg(long, env = "ROSTER_SCIM_ADDR")]
        scim_addr: Option<SocketAddr>,
        /// The SCIM endpoint's certificate chain (PEM), e.g. a mounted
        /// `kubernetes.io/tls` Secret's `tls.crt`.
        #[arg(long, env = "ROSTER_SCIM_TLS_CERT")]
        scim_tls_cert: Option<std::path::PathBuf>,
        /// The SCIM endpoint's private key (PEM), e.g. the Secret's `tls.key`.
        #[arg(long, env = "ROSTER_SCIM_TLS_KEY")]
        scim_tls_key: Option<std::path::PathBuf>,
        /// Serve the SCIM endpoint over plain HTTP: only when TLS ends in front of it
        /// (an Ingress, a mesh) or for a demo on loopback. Pushes carry bearer tokens.
        #[arg(long, env = "ROSTER_SCIM_PLAINTEXT")]
        scim_plaintext: bool,
    },
    /// Print the governance numbers — entitlement accuracy, deprovisioning completion,
    /// exceptions needing a person — for the cluster of the current kubeconfig.
    Report {
        /// `text` for people, `json` for tooling.
        #[arg(long, short, value_enum, default_value_t = ReportFormat::Text)]
        output: ReportFormat,
    },
}

/// How `roster report` prints.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum ReportFormat {
    Text,
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Crds => print_yaml("the CRDs", roster::api::crds_yaml()),
        Command::AdmissionPolicy => print_yaml(
            "the admission policies",
            roster::api::admission::admission_yaml(),
        ),
        Command::Report { output } => report(output),
        Command::Run {
            probe_addr,
            log_format,
            leader_elect,
            leader_elect_namespace,
            leader_elect_lease,
            allow_target_networks,
            owner_grace_seconds,
            scim_addr,
            scim_tls_cert,
            scim_tls_key,
            scim_plaintext,
        } => {
            telemetry::init_logging(log_format);
            // 8 MiB a thread, not 2: CEL evaluation recurses once per level of a
            // subject expression (bounded by `lifecycle::cel_cost::MAX_DEPTH`).
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .thread_stack_size(8 << 20)
                .build();
            let runtime = match runtime {
                Ok(rt) => rt,
                Err(err) => return fail(&format!("cannot start the async runtime: {err}")),
            };
            let leader = leader_elect.then(|| operator::LeaderOptions {
                namespace: leader_elect_namespace,
                name: leader_elect_lease,
                identity: operator::process_identity(),
                timing: Default::default(),
            });
            let targets = roster::connector::target::TargetPolicy::allowing(allow_target_networks);
            let scim = match operator::scim::Options::from_flags(
                scim_addr,
                scim_tls_cert,
                scim_tls_key,
                scim_plaintext,
            ) {
                Ok(scim) => scim,
                Err(err) => return fail(&err.to_string()),
            };
            let options = operator::RunOptions {
                probe_addr,
                leader,
                targets,
                owner_grace: k8s_openapi::jiff::SignedDuration::from_secs(i64::from(
                    owner_grace_seconds,
                )),
                scim,
            };
            match runtime.block_on(operator::run(options)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(err @ operator::Error::LeadershipLost) => {
                    // Stop at once: nothing in flight may write once a standby can lead.
                    eprintln!("error: {err}");
                    std::process::exit(1)
                }
                Err(err) => fail(&err.to_string()),
            }
        }
    }
}

fn report(output: ReportFormat) -> ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(err) => return fail(&format!("cannot start the async runtime: {err}")),
    };
    let figures = match runtime.block_on(operator::report::measure()) {
        Ok(f) => f,
        Err(err) => return fail(&err.to_string()),
    };
    let text = match output {
        ReportFormat::Text => governance::render(&figures),
        ReportFormat::Json => match serde_json::to_string_pretty(&figures) {
            Ok(json) => json + "\n",
            Err(err) => return fail(&format!("cannot encode the report: {err}")),
        },
    };
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => fail(&format!("cannot write the report: {err}")),
    }
}

fn print_yaml(what: &str, yaml: Result<String, roster::api::RenderError>) -> ExitCode {
    match yaml {
        Ok(yaml) => match std::io::stdout().lock().write_all(yaml.as_bytes()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => fail(&format!("cannot write {what}: {err}")),
        },
        Err(err) => fail(&err.to_string()),
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::FAILURE
}
