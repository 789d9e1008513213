//! Shared by the `grantwatch redrive` and `reconcile` end-to-end tests: the
//! compiled CLI run with the watcher's environment (as the template
//! resolves it in moto) and moto's.
#![allow(dead_code)]

use grantwatch_e2e::runtime_api::function_binary;
use grantwatch_e2e::watcher_world::World;
use std::process::Output;

/// What one `grantwatch` run printed and returned.
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// stdout's lines starting with `prefix`.
    pub fn lines_starting(&self, prefix: &str) -> Vec<&str> {
        self.stdout
            .lines()
            .filter(|l| l.starts_with(prefix))
            .collect()
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {:?}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// `grantwatch ARGS` with the watcher's settings in the environment.
pub async fn grantwatch(world: &World, args: &[&str]) -> Run {
    grantwatch_without(world, args, &[]).await
}

/// [`grantwatch`] with the settings `without` left out of the environment.
pub async fn grantwatch_without(world: &World, args: &[&str], without: &[&str]) -> Run {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let mut env = world.env.clone();
    env.extend(world.moto.lambda_env());
    for name in without {
        env.remove(*name);
    }
    let output: Output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(function_binary("grantwatch"))
            .args(&args)
            .env_clear()
            .envs(env)
            .output()
            .expect("run grantwatch")
    })
    .await
    .expect("grantwatch task");
    Run {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// For each message that reached the alert topic (read back through its
/// SQS subscription; each read empties it), the first of `names` its text
/// holds ("?" for none), sorted.
pub async fn alerts_naming(world: &World, names: &[&str]) -> Vec<String> {
    let mut found: Vec<String> = world
        .inbox
        .receive()
        .await
        .iter()
        .map(|m| {
            names
                .iter()
                .find(|name| m.message.contains(*name))
                .map_or_else(|| format!("? {}", m.message), |name| name.to_string())
        })
        .collect();
    found.sort();
    found
}
