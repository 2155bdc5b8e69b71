//! `cargo xtask bench live`: the live-data load test. The measuring is done by the server
//! crate's `live_load` example (crates/twinscene-server/examples/live_load.rs); this only builds
//! it in release and passes the arguments through, so that the two cannot drift apart.

/// Where a run's files go, e.g. `--db target/bench/live.sqlite`.
const BENCH_DIR: &str = "target/bench";

#[derive(clap::Args)]
pub struct Args {
    /// Arguments for the load example, e.g. `--viewers 100 --rate 10000 --seconds 10
    /// --db target/bench/live.sqlite --sync full`, or `--sweep 2500,5000,10000`; `-- --help` lists them.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pass_through: Vec<String>,
}

pub fn run(args: &Args) -> Result<(), String> {
    // SQLite does not create the database's directory.
    std::fs::create_dir_all(BENCH_DIR).map_err(|e| format!("cannot create {BENCH_DIR}: {e}"))?;
    let mut command = vec!["run", "--release", "-p", "twinscene-server", "--example", "live_load", "--"];
    command.extend(args.pass_through.iter().map(String::as_str));
    crate::run("cargo", &command)
}
