//! One libFuzzer binary for every target: GRANTWATCH_FUZZ_TARGET names the
//! target (grantwatch-fuzz list). Built and run by `make fuzz`.
#![no_main]

use grantwatch_fuzz::Target;
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

static TARGET: OnceLock<&'static Target> = OnceLock::new();

fuzz_target!(
    init: {
        let name = std::env::var("GRANTWATCH_FUZZ_TARGET").unwrap_or_default();
        match grantwatch_fuzz::target(&name) {
            Some(target) => {
                let _ = TARGET.set(target);
            }
            None => {
                eprintln!("GRANTWATCH_FUZZ_TARGET={name:?} is not a target; one of:");
                for t in grantwatch_fuzz::TARGETS {
                    eprintln!("  {}", t.name);
                }
                std::process::exit(2);
            }
        }
    },
    |data: &[u8]| {
        if let Some(target) = TARGET.get() {
            (target.run)(data);
        }
    }
);
