//! Build the weekly report.
