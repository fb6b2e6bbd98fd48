//! `yixin`: one binary, one image. `yixin serve` runs the whole platform;
//! `yixin order-intake|dispatcher|nurse-tracking` run one service each;
//! `yixin migrate` and `yixin token` are operator tools.

use std::{net::SocketAddr, path::PathBuf, process::ExitCode};

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use sea_orm_migration::MigratorTrait;
use yixin::{Role, Yixin};
use yixin_auth::Role as TokenRole;
use yixin_platform::{Settings, telemetry};

#[derive(Parser)]
#[command(
    name = "yixin",
    version,
    about = "Home-care nursing dispatch: a nurse at the door within 30 minutes"
)]
struct Cli {
    /// A TOML configuration file, layered under the environment (`YIXIN_*`).
    #[arg(long, global = true, env = "YIXIN_CONFIG_FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run all three services in one process.
    Serve(ServeArgs),
    /// Run only order-intake (residents' API).
    OrderIntake(ServeArgs),
    /// Run only the dispatcher (matching and the coordinator API).
    Dispatcher(ServeArgs),
    /// Run only nurse-tracking (nurses' phones).
    NurseTracking(ServeArgs),
    /// Apply (or roll back) database migrations, then exit.
    Migrate {
        #[arg(value_enum, default_value_t = MigrateDirection::Up)]
        direction: MigrateDirection,
        /// With `down`: how many migrations to roll back.
        #[arg(long, default_value_t = 1)]
        steps: u32,
    },
    /// Mint a token for an operator or a test client (needs the signing key).
    Token {
        #[arg(long, value_enum)]
        role: TokenRoleArg,
        #[arg(long)]
        sub: String,
        #[arg(long)]
        org: String,
    },
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Listen address; overrides `server.addr`.
    #[arg(long)]
    addr: Option<SocketAddr>,
}

#[derive(Clone, Copy, ValueEnum)]
enum MigrateDirection {
    Up,
    Down,
    Status,
}

#[derive(Clone, Copy, ValueEnum)]
enum TokenRoleArg {
    Resident,
    Nurse,
    Coordinator,
}

impl From<TokenRoleArg> for TokenRole {
    fn from(role: TokenRoleArg) -> Self {
        match role {
            TokenRoleArg::Resident => TokenRole::Resident,
            TokenRoleArg::Nurse => TokenRole::Nurse,
            TokenRoleArg::Coordinator => TokenRole::Coordinator,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(settings) => settings,
        Err(err) => {
            eprintln!("yixin: {err}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("yixin: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command, settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("yixin: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command, mut settings: Settings) -> anyhow::Result<()> {
    match command {
        Command::Serve(args) => serve(settings, Role::All, args).await,
        Command::OrderIntake(args) => serve(settings, Role::OrderIntake, args).await,
        Command::Dispatcher(args) => serve(settings, Role::Dispatcher, args).await,
        Command::NurseTracking(args) => serve(settings, Role::NurseTracking, args).await,
        Command::Migrate { direction, steps } => {
            telemetry::init_tracing(&settings.log);
            settings.database.migrate_on_start = false;
            let store = yixin::connect_store(&settings).await?;
            let db = store.connection();
            match direction {
                MigrateDirection::Up => {
                    store.migrate().await.context("migrating")?;
                    println!("migrations applied");
                }
                MigrateDirection::Down => {
                    yixin_migration::Migrator::down(db, Some(steps))
                        .await
                        .context("rolling back")?;
                    println!("rolled back {steps} migration(s)");
                }
                MigrateDirection::Status => {
                    for m in yixin_migration::Migrator::get_migration_with_status(db).await? {
                        println!("{}\t{}", m.name(), m.status());
                    }
                }
            }
            Ok(())
        }
        Command::Token { role, sub, org } => {
            let auth = yixin::authenticator(&settings)?;
            let token = auth
                .mint(role.into(), &sub, &org)
                .context("minting (this needs auth.jwt_secret or auth.private_key_pem)")?;
            println!("{token}");
            Ok(())
        }
    }
}

async fn serve(mut settings: Settings, role: Role, args: ServeArgs) -> anyhow::Result<()> {
    if let Some(addr) = args.addr {
        settings.server.addr = addr;
    }
    telemetry::init_tracing(&settings.log);
    let listener = std::net::TcpListener::bind(settings.server.addr)
        .with_context(|| format!("binding {} (server.addr)", settings.server.addr))?;
    Yixin::start(settings, role, listener)
        .await?
        .run_until_signal()
        .await
}
