//! `yixin`: one binary, one image. `yixin serve` runs the whole platform;
//! `yixin order-intake|dispatcher|nurse-tracking` run one service each;
//! `yixin migrate` and `yixin token` are operator tools; `yixin simulate`
//! runs the city simulator (no server, no database).

use std::{net::SocketAddr, path::PathBuf, process::ExitCode, time::Duration};

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
    /// Simulate a district for days and compare the dispatch policies
    /// (greedy, batch, and a clairvoyant hindsight planner as reference).
    Simulate(SimulateArgs),
    /// Mint a token for an operator or a test client (needs the signing key),
    /// e.g. the first coordinator's: `--role coordinator --sub ops-1 --org ORG`.
    Token {
        #[arg(long, value_enum)]
        role: TokenRoleArg,
        #[arg(long)]
        sub: String,
        #[arg(long)]
        org: String,
        /// Lifetime in seconds (default `auth.token_ttl_secs`).
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
        ttl: Option<u64>,
    },
    /// Ask the server on `server.addr` (or `--addr`) for `GET /healthz`;
    /// exit 0 on a 200: the container image's health check.
    Healthcheck {
        #[arg(long)]
        addr: Option<SocketAddr>,
    },
    /// Organisations: `yixin org create --name NAME [--id ID]`.
    Org {
        #[command(subcommand)]
        command: OrgCommand,
    },
    /// Service areas: `yixin area import FILE.geojson --org ID`.
    Area {
        #[command(subcommand)]
        command: AreaCommand,
    },
    /// The nurse roster: `yixin nurse import FILE.csv --org ID`.
    Nurse {
        #[command(subcommand)]
        command: NurseCommand,
    },
}

#[derive(Subcommand)]
enum OrgCommand {
    /// Create an organisation (an existing id is left as it is).
    Create {
        /// Display name, e.g. 双福街道社区卫生服务中心.
        #[arg(long)]
        name: String,
        /// The id tokens carry as `org` (1–64 of A-Z a-z 0-9 _ . : @ -);
        /// default: a new random one.
        #[arg(long)]
        id: Option<String>,
    },
}

#[derive(Subcommand)]
enum AreaCommand {
    /// Import service areas from GeoJSON: a FeatureCollection of Polygon or
    /// MultiPolygon features with a `name` property; an area of the same
    /// name is replaced.
    Import {
        file: PathBuf,
        #[arg(long)]
        org: String,
        /// Check and report only; write nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Subcommand)]
enum NurseCommand {
    /// Import nurses and their credentials from CSV (columns: README
    /// "Deploy"); a nurse with the same phone is updated.
    Import {
        file: PathBuf,
        #[arg(long)]
        org: String,
        /// Who the audit trail names for the credentials entered and verified.
        #[arg(long, default_value = yixin::bootstrap::DEFAULT_ACTOR)]
        by: String,
        /// Check and report only; write nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Listen address; overrides `server.addr`.
    #[arg(long)]
    addr: Option<SocketAddr>,
    /// With `serve`: simulated phones of a live district (24 nurses, an
    /// order every 24 s, rides and visits ten times faster: a daytime of
    /// the simulator's Shuangfu scenario) run against this platform, for
    /// the dashboard. A restart takes the same nurses back and closes what
    /// the previous run left open. Needs dev login and the demo
    /// organisation (the embedded default).
    #[arg(long)]
    demo: bool,
}

/// `yixin simulate`: the default scenario is Shuangfu, Jiangjin (see the
/// README's Simulator section); options scale it.
#[derive(clap::Args)]
struct SimulateArgs {
    #[arg(long, default_value_t = 1)]
    seed: u64,
    #[arg(long, default_value_t = 1)]
    days: u32,
    /// Mean orders a day (default: 2 % of the residents aged 65+).
    #[arg(long)]
    orders_per_day: Option<f64>,
    /// Nurses (default: sized for the orders at 65 % utilisation).
    #[arg(long)]
    nurses: Option<u32>,
    /// Area of the (square) district, km².
    #[arg(long)]
    area_km2: Option<f64>,
    /// Probability a nurse accepts an offer (declines with 0.10, else lets it lapse).
    #[arg(long)]
    accept: Option<f64>,
    /// Minutes a resident waits for a nurse to be on the way before cancelling.
    #[arg(long)]
    patience_min: Option<i64>,
    /// Repeat patients: 30 % of orders (other than course visits) from a
    /// resident who ordered before, and package services as courses.
    /// Off by default; `--continuity` turns it on.
    #[arg(long)]
    repeat_patients: bool,
    /// Share of orders (other than course visits) placed by a resident who
    /// ordered before (0 by default, 0.30 with repeat patients).
    #[arg(long)]
    repeat_share: Option<f64>,
    /// No courses: package services are single visits.
    #[arg(long)]
    no_courses: bool,
    /// The ranking's continuity credit, seconds (default: the engine's, 300; 0 = off).
    #[arg(long)]
    continuity_credit_s: Option<u32>,
    /// Compare the continuity credit against none on the same instance.
    #[arg(long)]
    continuity: bool,
    /// `greedy`, `batch`, `hindsight`, a comma-separated list, or `all`
    /// (the default). With `--staffing`: one policy, or `best` (the
    /// default: the online policy best with today's roster).
    #[arg(long)]
    policy: Option<String>,
    /// Staffing advice: per shift and skill group, the smallest roster with
    /// which every hour reaches 90 % of its orders within 30 minutes.
    #[arg(long)]
    staffing: bool,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// Write an SVG chart: the share within 30 minutes by hour, or with
    /// `--staffing` the nurses on duty by hour, today against recommended.
    #[arg(long)]
    plot: Option<PathBuf>,
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
    Agent,
}

impl From<TokenRoleArg> for TokenRole {
    fn from(role: TokenRoleArg) -> Self {
        match role {
            TokenRoleArg::Resident => TokenRole::Resident,
            TokenRoleArg::Nurse => TokenRole::Nurse,
            TokenRoleArg::Coordinator => TokenRole::Coordinator,
            TokenRoleArg::Agent => TokenRole::Agent,
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
        Command::Simulate(args) => simulate(args),
        Command::Healthcheck { addr } => {
            yixin::healthcheck(addr.unwrap_or(settings.server.addr), Duration::from_secs(3))
        }
        Command::Org { command } => bootstrap(settings, Bootstrap::Org(command)).await,
        Command::Area { command } => bootstrap(settings, Bootstrap::Area(command)).await,
        Command::Nurse { command } => bootstrap(settings, Bootstrap::Nurse(command)).await,
        Command::Token {
            role,
            sub,
            org,
            ttl,
        } => {
            for (field, value) in [("--sub", &sub), ("--org", &org)] {
                anyhow::ensure!(
                    yixin_auth::is_valid_identifier(value),
                    "{field} must be 1 to 64 characters of A-Z, a-z, 0-9, `_`, `.`, `:`, `@`, `-`"
                );
            }
            if let Some(ttl) = ttl {
                settings.auth.token_ttl_secs = ttl;
            }
            let auth = yixin::authenticator(&settings)?;
            let token = auth
                .mint(role.into(), &sub, &org)
                .context("minting (this needs auth.jwt_secret or auth.private_key_pem)")?;
            println!("{token}");
            Ok(())
        }
    }
}

enum Bootstrap {
    Org(OrgCommand),
    Area(AreaCommand),
    Nurse(NurseCommand),
}

fn read_file(path: &std::path::Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

/// `yixin org|area|nurse …`: the bootstrap commands, on the configured
/// database (migrated first when `database.migrate_on_start`, as `serve` does).
async fn bootstrap(settings: Settings, command: Bootstrap) -> anyhow::Result<()> {
    use yixin::bootstrap::{self as b, Outcome};
    telemetry::init_tracing(&settings.log);
    let store = yixin::connect_store(&settings).await?;
    if settings.database.migrate_on_start {
        store.migrate().await.context("migrating the database")?;
    }
    let dry = |dry_run: bool| {
        if dry_run {
            " (dry run: nothing written)"
        } else {
            ""
        }
    };
    match command {
        Bootstrap::Org(OrgCommand::Create { name, id }) => {
            let id = id.unwrap_or_else(|| {
                format!("org-{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
            });
            let outcome = b::create_org(&store, &id, &name).await?;
            match outcome {
                Outcome::Created => println!("organisation {id} created"),
                _ => println!("organisation {id} exists already (left as it is)"),
            }
        }
        Bootstrap::Area(AreaCommand::Import { file, org, dry_run }) => {
            let text = read_file(&file)?;
            let org = yixin_domain::OrgId::from(org.as_str());
            let results = b::import_areas(&store, &org, &text, dry_run).await?;
            for r in &results {
                println!("{}\t{}\t{}", r.outcome.as_str(), r.id, r.name);
            }
            println!("{} area(s) of {}{}", results.len(), org, dry(dry_run));
        }
        Bootstrap::Nurse(NurseCommand::Import {
            file,
            org,
            by,
            dry_run,
        }) => {
            let text = read_file(&file)?;
            let org = yixin_domain::OrgId::from(org.as_str());
            let results = b::import_nurses(&store, &org, &text, &by, dry_run).await?;
            for r in &results {
                let credentials = r.verification.map_or("no credentials", |v| v.as_str());
                println!(
                    "line {}\t{}\t{}\t{}\t{}",
                    r.line,
                    r.outcome.as_str(),
                    r.id,
                    credentials,
                    r.name
                );
            }
            let count = |o: Outcome| results.iter().filter(|r| r.outcome == o).count();
            println!(
                "{} nurse(s) of {}: {} created, {} updated, {} unchanged{}",
                results.len(),
                org,
                count(Outcome::Created),
                count(Outcome::Updated),
                count(Outcome::Unchanged),
                dry(dry_run)
            );
            if !dry_run {
                announce_roster(&settings, &results).await;
            }
        }
    }
    Ok(())
}

/// Tells running dispatchers (through Redis) which nurses changed, as the
/// roster API does; without Redis there is no running instance to tell
/// (the in-process queue lives in the server's process).
async fn announce_roster(settings: &Settings, results: &[yixin::bootstrap::NurseResult]) {
    if settings.redis.url.is_none() {
        return;
    }
    let queue = match yixin::connect_queue(settings).await {
        Ok((queue, _)) => queue,
        Err(e) => {
            eprintln!("yixin: roster changes not announced to running dispatchers: {e:#}");
            return;
        }
    };
    for r in results
        .iter()
        .filter(|r| r.outcome != yixin::bootstrap::Outcome::Unchanged)
    {
        if let Err(e) = queue
            .broadcast(yixin_contracts::ROSTER_CHANNEL, r.id.to_string().as_bytes())
            .await
        {
            eprintln!("yixin: roster change of {} not announced: {e}", r.id);
        }
    }
}

async fn serve(mut settings: Settings, role: Role, args: ServeArgs) -> anyhow::Result<()> {
    if let Some(addr) = args.addr {
        settings.server.addr = addr;
    }
    telemetry::init_tracing(&settings.log);
    if args.demo && role != Role::All {
        anyhow::bail!("--demo runs with `yixin serve` (all services in one process)");
    }
    let listener = std::net::TcpListener::bind(settings.server.addr)
        .with_context(|| format!("binding {} (server.addr)", settings.server.addr))?;
    let yixin = Yixin::start(settings, role, listener).await?;
    if args.demo {
        let (addr, stop) = (yixin.addr, yixin.shutdown_signal());
        tokio::spawn(async move {
            if let Err(e) = yixin::run_demo(addr, stop).await {
                tracing::warn!(error = %format!("{e:#}"), "demo: simulated district stopped");
            }
        });
    }
    yixin.run_until_signal().await
}

fn simulate(args: SimulateArgs) -> anyhow::Result<()> {
    use yixin_simulator::{Policy, Scenario};
    let mut scenario = Scenario::shuangfu();
    scenario.seed = args.seed;
    scenario.days = args.days;
    if let Some(orders) = args.orders_per_day {
        scenario.orders_per_day = orders;
        scenario.nurses = Scenario::nurses_for(orders);
    }
    if let Some(n) = args.nurses {
        scenario.nurses = n;
    }
    if let Some(a) = args.area_km2 {
        scenario.area_km2 = a;
    }
    if let Some(p) = args.accept {
        scenario.accept_prob = p;
    }
    if let Some(p) = args.patience_min {
        scenario.patience_min = p;
    }
    if args.repeat_patients || args.continuity {
        scenario = scenario.with_repeat_patients();
    }
    if let Some(r) = args.repeat_share {
        scenario.repeat_share = r;
    }
    if args.no_courses {
        scenario.courses = false;
    }
    if let Some(c) = args.continuity_credit_s {
        scenario.continuity_credit_s = c;
    }
    if let Some(path) = &args.plot
        && path
            .extension()
            .is_some_and(|e| !e.eq_ignore_ascii_case("svg"))
    {
        anyhow::bail!("--plot writes SVG: give a file ending in .svg");
    }
    if args.staffing {
        if args.continuity {
            anyhow::bail!("--staffing and --continuity are separate reports: give one");
        }
        let policy = match args.policy.as_deref() {
            None | Some("best") => None,
            Some(name) => match Policy::parse_list(name)?.as_slice() {
                [one] => Some(*one),
                _ => anyhow::bail!("--staffing sweeps with one policy: give one name or best"),
            },
        };
        let advice = yixin_simulator::staffing::advise(
            &scenario,
            &yixin_domain::Catalog::seed(),
            &yixin_simulator::staffing::StaffingOptions {
                policy,
                ..Default::default()
            },
        )?;
        if let Some(path) = &args.plot {
            std::fs::write(path, advice.svg())
                .with_context(|| format!("writing {}", path.display()))?;
        }
        if args.json {
            println!("{}", serde_json::to_string_pretty(&advice)?);
        } else {
            print!("{}", advice.table());
        }
        return Ok(());
    }
    let policies = Policy::parse_list(args.policy.as_deref().unwrap_or("all"))?;
    if args.continuity {
        if args.plot.is_some() {
            anyhow::bail!("--plot draws one run: leave it out with --continuity");
        }
        let cmp = yixin_simulator::compare_continuity(
            &scenario,
            &yixin_domain::Catalog::seed(),
            &policies,
        )?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&cmp)?);
        } else {
            print!("{}", cmp.table());
        }
        return Ok(());
    }
    let report = yixin_simulator::simulate(&scenario, &yixin_domain::Catalog::seed(), &policies)?;
    if let Some(path) = &args.plot {
        std::fs::write(path, report.svg())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.table());
    }
    Ok(())
}
