//! `make demo`: a week in the life of an account, played through the real
//! grantwatch binaries against a local AWS emulator. See `grantwatch_e2e::demo`.

use grantwatch_e2e::demo::{self, DemoOptions};
use std::path::PathBuf;
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let out_dir = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("out/demo"));
    let options = DemoOptions {
        out_dir: out_dir.clone(),
        screenshots: std::env::var_os("DEMO_NO_SCREENSHOTS").is_none(),
    };

    // Ctrl-C or SIGTERM drops the demo's future, whose guards stop moto, the
    // Slack stand-in and the function processes before we exit.
    let (interrupted_tx, interrupted_rx) = tokio::sync::oneshot::channel::<()>();
    let mut interrupted_tx = Some(interrupted_tx);
    if let Err(e) = ctrlc::set_handler(move || {
        if let Some(tx) = interrupted_tx.take() {
            let _ = tx.send(());
        }
    }) {
        eprintln!("demo: cannot watch for Ctrl-C ({e}); continuing");
    }

    let outcome = tokio::select! {
        outcome = demo::run(&options) => outcome,
        _ = interrupted_rx => {
            eprintln!("\ndemo: interrupted; every process it started has been stopped");
            return ExitCode::from(130);
        }
    };
    match outcome {
        Ok(outcome) => {
            let alerts = outcome
                .steps
                .iter()
                .filter(|s| s.sns > 0 || s.slack > 0)
                .count();
            println!("\n══ Done ══");
            println!(
                "{} events played, {} raised alerts; {} SNS messages and {} Slack messages delivered.",
                outcome.steps.len(),
                alerts,
                outcome.sns.len(),
                outcome.slack.len()
            );
            println!("Look at:");
            for file in &outcome.files {
                println!("  {}", file.display());
            }
            ExitCode::SUCCESS
        }
        Err(problem) => {
            eprintln!("demo failed: {problem}");
            ExitCode::FAILURE
        }
    }
}
