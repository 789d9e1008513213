//! `grants.csv`: one row per grant, for spreadsheets.
//!
//! RFC 4180 quoting, and formula-injection neutralising: a cell that starts
//! with `=`, `+`, `-`, `@`, a tab or a carriage return gets a leading `'`
//! so a spreadsheet shows it as text instead of evaluating it.

use super::model::{GrantReport, KeyReport, Report};

pub const HEADER: [&str; 24] = [
    "account",
    "region",
    "key_id",
    "key_arn",
    "key_description",
    "key_tags",
    "key_aliases",
    "key_manager",
    "key_state",
    "key_spec",
    "grant_id",
    "name",
    "grantee",
    "retiring_principal",
    "operations",
    "constraints",
    "created",
    "origin",
    "service",
    "severity",
    "findings",
    "suppressed_by",
    "created_by",
    "issuing_account",
];

/// The whole file: a header line then one line per grant, `\r\n` line ends.
pub fn write(report: &Report) -> String {
    chunks(report).collect()
}

/// The file a piece at a time: the header line, then each key's rows.
pub fn chunks(report: &Report) -> impl Iterator<Item = String> + Send + '_ {
    let mut header = String::new();
    push_row(&mut header, HEADER.iter().map(|h| h.to_string()));
    std::iter::once(header).chain(report.keys.iter().map(|key| {
        let mut rows = String::new();
        for grant in &key.grants {
            push_row(&mut rows, row(key, grant).into_iter());
        }
        rows
    }))
}

fn row(key: &KeyReport, grant: &GrantReport) -> Vec<String> {
    let opt = |v: &Option<String>| v.clone().unwrap_or_default();
    let constraints = grant
        .constraints
        .as_ref()
        .and_then(|c| serde_json::to_string(c).ok())
        .unwrap_or_default();
    let findings = grant
        .findings
        .iter()
        .map(|f| f.code.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    vec![
        key.account.clone(),
        key.region.clone(),
        key.key_id.clone(),
        key.key_arn.clone(),
        opt(&key.description),
        key.tags
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; "),
        key.aliases.join(" "),
        key.manager
            .map(|m| m.as_str().to_string())
            .unwrap_or_default(),
        opt(&key.state),
        opt(&key.key_spec),
        grant.grant_id.clone(),
        opt(&grant.name),
        opt(&grant.grantee),
        opt(&grant.retiring_principal),
        grant
            .operations
            .iter()
            .map(|o| o.as_str())
            .collect::<Vec<_>>()
            .join(" "),
        constraints,
        opt(&grant.created),
        grant.origin.as_str().to_string(),
        opt(&grant.service),
        grant.severity.as_str().to_string(),
        findings,
        opt(&grant.suppressed_by),
        grant
            .created_by
            .as_ref()
            .and_then(|c| c.arn.clone())
            .unwrap_or_default(),
        opt(&grant.issuing_account),
    ]
}

fn push_row(out: &mut String, cells: impl Iterator<Item = String>) {
    for (i, cell) in cells.enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&quote(&neutralise(&cell)));
    }
    out.push_str("\r\n");
}

/// Prefix a cell a spreadsheet would read as a formula.
pub fn neutralise(cell: &str) -> String {
    match cell.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{cell}"),
        _ => cell.to_string(),
    }
}

/// RFC 4180: quote a cell holding a comma, quote, CR or LF; double quotes.
pub fn quote(cell: &str) -> String {
    if cell.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", cell.replace('"', "\"\""))
    } else {
        cell.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::test_support::{grant, key, report};
    use crate::verdict::Severity;

    #[test]
    fn formula_starts_are_neutralised() {
        for bad in ["=HYPERLINK(\"x\")", "+1", "-1+2", "@SUM(A1)", "\tx", "\rx"] {
            assert!(neutralise(bad).starts_with('\''), "{bad:?}");
        }
        assert_eq!(neutralise("alias/ok"), "alias/ok");
        assert_eq!(neutralise(""), "");
    }

    #[test]
    fn quoting_keeps_cells_whole() {
        assert_eq!(quote("a,b"), "\"a,b\"");
        assert_eq!(quote("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(quote("line\nbreak"), "\"line\nbreak\"");
        assert_eq!(quote("plain"), "plain");
    }

    #[test]
    fn one_row_per_grant_and_hostile_names_stay_in_their_cell() {
        let mut g = grant("g1", Severity::High);
        g.name = Some("=cmd|' /C calc'!A0,\"x\"\nnext".to_string());
        let r = report(vec![
            key("k1", vec![g, grant("g2", Severity::Low)]),
            key("k2", vec![grant("g3", Severity::Info)]),
        ]);
        let text = write(&r);
        let rows = parse(&text);
        assert_eq!(rows.len(), 1 + 3);
        assert!(rows.iter().all(|r| r.len() == HEADER.len()));
        let name_col = HEADER.iter().position(|h| *h == "name").unwrap();
        assert_eq!(rows[1][name_col], "'=cmd|' /C calc'!A0,\"x\"\nnext");
    }

    #[test]
    fn the_key_description_and_tags_have_their_columns_guarded_like_any_cell() {
        let mut k = key("k1", vec![grant("g1", Severity::Low)]);
        k.description = Some("=HYPERLINK(\"x\"),\nkey".to_string());
        k.tags = [("team", "pay,ments"), ("env", "prod")]
            .into_iter()
            .map(|(t, v)| (t.to_string(), v.to_string()))
            .collect();
        let rows = parse(&write(&report(vec![k])));
        let col = |name: &str| HEADER.iter().position(|h| *h == name).unwrap();
        assert_eq!(rows[1].len(), HEADER.len());
        assert_eq!(rows[1][col("key_description")], "'=HYPERLINK(\"x\"),\nkey");
        assert_eq!(rows[1][col("key_tags")], "env=prod; team=pay,ments");
        assert_eq!(col("key_description"), col("key_arn") + 1);
    }

    /// A minimal RFC 4180 reader, to check what a spreadsheet would see.
    fn parse(text: &str) -> Vec<Vec<String>> {
        let mut rows = vec![];
        let mut row = vec![];
        let mut cell = String::new();
        let mut quoted = false;
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            match (quoted, c) {
                (true, '"') if chars.peek() == Some(&'"') => {
                    chars.next();
                    cell.push('"');
                }
                (true, '"') => quoted = false,
                (true, c) => cell.push(c),
                (false, '"') => quoted = true,
                (false, ',') => row.push(std::mem::take(&mut cell)),
                (false, '\r') => {}
                (false, '\n') => {
                    row.push(std::mem::take(&mut cell));
                    rows.push(std::mem::take(&mut row));
                }
                (false, c) => cell.push(c),
            }
        }
        rows
    }
}
