//! `quorra cert init|issue`: the cluster CA and its certificates.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use quorra_node::runtime::certs::{Role, init, issue};

use super::CliError;

#[derive(Subcommand, Debug)]
pub(crate) enum CertCommand {
    /// Make a new cluster CA (ca.crt, ca.key) in a directory.
    Init(InitArgs),
    /// Issue a node (default) or client certificate signed by the CA.
    Issue(IssueArgs),
}

#[derive(Args, Debug)]
pub(crate) struct InitArgs {
    /// Directory for the CA (created if needed).
    #[arg(long)]
    dir: PathBuf,
}

#[derive(Args, Debug)]
pub(crate) struct IssueArgs {
    /// Directory holding the CA; the certificate goes there too.
    #[arg(long)]
    dir: PathBuf,
    /// Name of the certificate: files NAME.crt and NAME.key.
    #[arg(long)]
    name: String,
    /// Issue a client certificate instead of a node certificate.
    #[arg(long)]
    client: bool,
}

pub(crate) fn run(command: CertCommand) -> Result<(), CliError> {
    match command {
        CertCommand::Init(a) => {
            init(&a.dir).map_err(|e| CliError::Failed(e.to_string()))?;
            eprintln!(
                "cluster CA written to {} (keep ca.key secret)",
                a.dir.display()
            );
        }
        CertCommand::Issue(a) => {
            let role = if a.client { Role::Client } else { Role::Node };
            issue(&a.dir, &a.name, role).map_err(|e| CliError::Failed(e.to_string()))?;
            eprintln!(
                "{} certificate written to {}/{}.crt and {}.key",
                if a.client { "client" } else { "node" },
                a.dir.display(),
                a.name,
                a.name
            );
        }
    }
    Ok(())
}
