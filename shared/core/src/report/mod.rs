//! The report model, its diff, and its writers (JSON, CSV, HTML, Markdown).
