//! `cargo xtask bench size`: builds the bundle to ship (profile `web-ship`) and checks its
//! compressed wasm against the size budget. Not part of CI: a clean size-optimized build with
//! fat LTO takes ~10 minutes and several GB on two cores.

use std::fmt::Write as _;

/// The compressed-size budget of the wasm bundle browsers download.
const BUDGET_MB: f64 = 6.0;
const REPORT: &str = "target/bench/size.md";

#[derive(clap::Args)]
pub struct Args {
    /// Budget for the gzip-compressed wasm, in MB (10^6 bytes).
    #[arg(long, default_value_t = BUDGET_MB)]
    budget_mb: f64,
}

pub fn run(args: &Args) -> crate::TaskResult {
    let shipped = crate::build_web_ship()?;
    let mb = |bytes: u64| bytes as f64 / 1e6;
    let mut report =
        String::from("| bundle | wasm raw (MB) | gzip (MB) | brotli (MB) |\n|---|---:|---:|---:|\n");
    // The test bundle, when one is built, shows what the shipping profile saves.
    let test_bundle = format!("{}/twinscene_viewer_bg.wasm", crate::WEB_DIST);
    if let (Ok(raw), Ok(gzip)) =
        (std::fs::metadata(&test_bundle), std::fs::metadata(format!("{test_bundle}.gz")))
    {
        let _ = writeln!(
            report,
            "| {} (release, tests) | {:.1} | {:.1} | |",
            crate::WEB_DIST,
            mb(raw.len()),
            mb(gzip.len())
        );
    }
    let brotli = shipped.wasm_brotli.map(|b| format!("{:.2}", mb(b))).unwrap_or_default();
    let _ = writeln!(
        report,
        "| {} (web-ship) | {:.1} | {:.2} | {brotli} |",
        crate::WEB_SHIP,
        mb(shipped.wasm_raw),
        mb(shipped.wasm_gzip)
    );
    let within = mb(shipped.wasm_gzip) <= args.budget_mb;
    let verdict = if within { "within" } else { "over" };
    let _ = writeln!(
        report,
        "\nBudget: {:.1} MB gzip: {verdict} ({:.2} MB). Build took {:.0} s.",
        args.budget_mb,
        mb(shipped.wasm_gzip),
        shipped.seconds
    );
    std::fs::create_dir_all("target/bench").map_err(|e| format!("cannot create target/bench: {e}"))?;
    std::fs::write(REPORT, &report).map_err(|e| format!("cannot write {REPORT}: {e}"))?;
    eprintln!("{report}xtask: written to {REPORT}");
    if !within {
        return Err(format!(
            "the shipped wasm is {:.2} MB gzip, over the {:.1} MB budget",
            mb(shipped.wasm_gzip),
            args.budget_mb
        ));
    }
    Ok(())
}
