//! Findings and severity.
