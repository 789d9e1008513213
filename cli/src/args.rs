//! Value parsers shared by the subcommands' flags (one wording each).

use grantwatch_core::verdict::Severity;

/// `--min-severity` and the like: `info`, `low`, `medium`, `high`, `critical`.
pub fn severity(s: &str) -> Result<Severity, String> {
    s.parse()
}

/// `--since`, `--until`, `--today`: `YYYY-MM-DD`.
pub fn date(s: &str) -> Result<time::Date, String> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(s, &format).map_err(|_| format!("{s:?} is not a date (YYYY-MM-DD)"))
}
