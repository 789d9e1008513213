//! Slack mrkdwn: the one place for escaping, identifiers in backticks,
//! truncation and the Block Kit limits.
//!
//! Every string that came from an event is untrusted. Slack interprets
//! `<...>` as links and mentions (`<!channel>`) and `&` as the start of an
//! entity, so [`escape`] turns `&`, `<`, `>` into `&amp;`, `&lt;`, `&gt;`
//! (in that order). Over any Block Kit limit Slack rejects the whole
//! message, so every string is cut here, on a character boundary, never
//! inside an entity, with an ellipsis.
//!
//! Lengths are measured in UTF-16 code units ([`slack_len`]): never less
//! than the number of characters, so a string within the limit by this
//! count is within it however Slack counts.

/// At most 50 blocks per message.
pub const MAX_BLOCKS: usize = 50;
/// A header block's `plain_text`: 150 characters.
pub const MAX_HEADER_TEXT: usize = 150;
/// A section block's `text`: 3000 characters.
pub const MAX_SECTION_TEXT: usize = 3000;
/// At most 10 fields in a section block.
pub const MAX_FIELDS: usize = 10;
/// Each field's text: 2000 characters.
pub const MAX_FIELD_TEXT: usize = 2000;
/// At most 10 elements in a context block.
pub const MAX_CONTEXT_ELEMENTS: usize = 10;
/// A context element's text (a text object): 3000 characters.
pub const MAX_CONTEXT_TEXT: usize = 3000;
/// The top-level fallback `text` (notifications, screen readers). Slack
/// truncates long messages itself; a notification needs no more than this.
pub const MAX_FALLBACK_TEXT: usize = 3000;
/// An untrusted value shown inline (a grant name, an ARN, a user agent) is
/// cut to this many characters before escaping, so one long value cannot
/// crowd out the rest of a field.
pub const MAX_INLINE_VALUE: usize = 300;

/// What ends a cut string.
pub const ELLIPSIS: char = '…';

/// Stands in for a backtick inside a code span: a backtick would end the
/// span and let the rest of the value be read as mrkdwn.
pub const BACKTICK_STAND_IN: char = 'ˋ';

/// Escape untrusted text for mrkdwn (and for Block Kit `plain_text`, which
/// Slack also decodes): `&` → `&amp;`, `<` → `&lt;`, `>` → `&gt;`.
pub fn escape(s: &str) -> String {
    if !s.contains(['&', '<', '>']) {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            _ => out.push(c),
        }
    }
    out
}

/// Undo [`escape`] for display (terminal output). `&amp;` last, so that
/// `&amp;lt;` reads back as `&lt;`.
pub fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// An untrusted identifier as an inline code span: cut to
/// [`MAX_INLINE_VALUE`], line breaks and control characters made spaces,
/// backticks replaced by [`BACKTICK_STAND_IN`] (so the span cannot be
/// closed early), escaped. An empty value shows as `(empty)`.
pub fn code(s: &str) -> String {
    // One pass: cut, clean and escape together (this runs for every value
    // of every alert).
    let budget = MAX_INLINE_VALUE - ELLIPSIS.len_utf16();
    let cut = slack_len_exceeds(s, MAX_INLINE_VALUE);
    let mut out = String::with_capacity(s.len().min(4 * MAX_INLINE_VALUE) + 8);
    out.push('`');
    let mut used = 0;
    let mut visible = false;
    for c in s.chars() {
        if cut && used + c.len_utf16() > budget {
            out.push(ELLIPSIS);
            break;
        }
        used += c.len_utf16();
        match c {
            '`' => out.push(BACKTICK_STAND_IN),
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
        visible |= !c.is_whitespace() && !c.is_control();
    }
    if !visible {
        return "`(empty)`".to_string();
    }
    out.push('`');
    out
}

/// `slack_len(s) > max`, without scanning when the byte length decides.
fn slack_len_exceeds(s: &str, max: usize) -> bool {
    // UTF-16 units never exceed UTF-8 bytes.
    s.len() > max && slack_len(s) > max
}

/// Untrusted prose (a finding's message, an impact): cut to `max`
/// characters, line breaks kept, other control characters made spaces,
/// escaped.
pub fn prose(s: &str, max: usize) -> String {
    let cut = truncate(s, max);
    let cleaned: String = cut
        .chars()
        .map(|c| if c.is_control() && c != '\n' { ' ' } else { c })
        .collect();
    escape(&cleaned)
}

/// A preformatted block (```` ``` ````) of lines, e.g. shell commands.
/// Backticks become [`BACKTICK_STAND_IN`] so the block cannot be closed
/// early; the content is escaped.
pub fn code_block(lines: &[String]) -> String {
    let body: String = lines
        .join("\n")
        .chars()
        .map(|c| match c {
            '`' => BACKTICK_STAND_IN,
            '\n' => '\n',
            c if c.is_control() => ' ',
            c => c,
        })
        .collect();
    format!("```\n{}\n```", escape(&body))
}

/// Length as Slack may count it: UTF-16 code units (≥ characters).
pub fn slack_len(s: &str) -> usize {
    s.chars().map(char::len_utf16).sum()
}

/// Cut plain (unescaped) text to at most `max` UTF-16 units, on a
/// character boundary, ending with [`ELLIPSIS`] when cut.
pub fn truncate(s: &str, max: usize) -> String {
    if !slack_len_exceeds(s, max) {
        return s.to_string();
    }
    if max == 0 {
        return String::new();
    }
    let budget = max - ELLIPSIS.len_utf16();
    let mut used = 0;
    let mut end = 0;
    for (i, c) in s.char_indices() {
        if used + c.len_utf16() > budget {
            break;
        }
        used += c.len_utf16();
        end = i + c.len_utf8();
    }
    let mut out = s[..end].to_string();
    out.push(ELLIPSIS);
    out
}

/// Cut already-escaped mrkdwn to at most `max` UTF-16 units, like
/// [`truncate`], and never inside an entity (`&amp;`, `&lt;`, `&gt;`): a
/// dangling `&` would be an unescaped ampersand.
pub fn truncate_mrkdwn(s: &str, max: usize) -> String {
    if !slack_len_exceeds(s, max) {
        return s.to_string();
    }
    let mut cut = truncate(s, max);
    cut.pop(); // the ellipsis; put back below
    if let Some(amp) = cut.rfind('&') {
        if !cut[amp..].contains(';') {
            cut.truncate(amp);
        }
    }
    if max > 0 {
        cut.push(ELLIPSIS);
    }
    cut
}

/// Join lines into one mrkdwn text of at most `max` units: whole lines
/// only, then "…and K more" for the lines that did not fit. A first line
/// too long on its own is cut.
pub fn fit_lines(lines: &[String], max: usize, noun: &str) -> String {
    let mut out = String::new();
    for (i, line) in lines.iter().enumerate() {
        let rest = lines.len() - i;
        let more = format!("…and {rest} more {noun}");
        let sep = if out.is_empty() { 0 } else { 1 };
        let needed = slack_len(&out) + sep + slack_len(line);
        // Room for this line, and for a "more" note if a later one overflows.
        let reserve = if rest > 1 { slack_len(&more) + 1 } else { 0 };
        if needed + reserve <= max {
            if sep == 1 {
                out.push('\n');
            }
            out.push_str(line);
            continue;
        }
        if out.is_empty() {
            // Not even one whole line fits: cut it, keep the note if possible.
            let room = max.saturating_sub(reserve);
            out = truncate_mrkdwn(line, room.max(1).min(max));
            if rest > 1 && slack_len(&out) + 1 + slack_len(&more) <= max {
                let more = format!("…and {} more {noun}", rest - 1);
                out.push('\n');
                out.push_str(&more);
            }
            return truncate_mrkdwn(&out, max);
        }
        out.push('\n');
        out.push_str(&more);
        return truncate_mrkdwn(&out, max);
    }
    truncate_mrkdwn(&out, max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_replaces_ampersand_first() {
        assert_eq!(escape("a&b<c>d"), "a&amp;b&lt;c&gt;d");
        assert_eq!(escape("&lt;"), "&amp;lt;");
        assert_eq!(escape("<!channel>"), "&lt;!channel&gt;");
    }

    #[test]
    fn unescape_reverses_escape() {
        for s in ["a&b<c>d", "&lt;", "&amp;amp;", "plain", "<<&&>>"] {
            assert_eq!(unescape(&escape(s)), s);
        }
    }

    #[test]
    fn code_cannot_be_broken_out_of() {
        assert_eq!(code("a`b"), "`aˋb`");
        assert_eq!(code("x` <!here> `y"), "`xˋ &lt;!here&gt; ˋy`");
        assert_eq!(code("line1\nline2"), "`line1 line2`");
        assert_eq!(code(""), "`(empty)`");
        assert_eq!(code("\n"), "`(empty)`");
    }

    #[test]
    fn code_block_cannot_be_closed_early() {
        let block = code_block(&["echo ```; rm -rf /".to_string()]);
        assert_eq!(block, "```\necho ˋˋˋ; rm -rf /\n```");
    }

    #[test]
    fn truncate_is_char_boundary_safe() {
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(truncate("abc", 3), "abc");
        assert_eq!(truncate("ééééé", 3), "éé…");
        // An emoji is two UTF-16 units.
        assert_eq!(truncate("😀😀😀", 4), "😀…");
        assert_eq!(truncate("😀😀😀", 2), "…");
        assert_eq!(truncate("abc", 0), "");
        assert!(slack_len(&truncate(&"😀".repeat(100), 7)) <= 7);
    }

    #[test]
    fn truncate_mrkdwn_never_cuts_an_entity() {
        let escaped = escape("ab&cd");
        assert_eq!(escaped, "ab&amp;cd");
        for max in 0..=escaped.len() + 1 {
            let cut = truncate_mrkdwn(&escaped, max);
            assert!(slack_len(&cut) <= max, "{cut} over {max}");
            if let Some(amp) = cut.rfind('&') {
                assert!(cut[amp..].starts_with("&amp;"), "{cut}");
            }
        }
        assert_eq!(truncate_mrkdwn(&escaped, 5), "ab…");
    }

    #[test]
    fn fit_lines_says_how_many_did_not_fit() {
        let lines: Vec<String> = (0..100).map(|i| format!("line {i:03}")).collect();
        let text = fit_lines(&lines, 60, "events");
        assert!(slack_len(&text) <= 60, "{text}");
        assert!(text.starts_with("line 000\nline 001"));
        let shown = text.lines().filter(|l| l.starts_with("line")).count();
        assert!(
            text.ends_with(&format!("…and {} more events", 100 - shown)),
            "{text}"
        );
        assert_eq!(fit_lines(&lines[..2], 60, "events"), "line 000\nline 001");
        assert_eq!(fit_lines(&[], 60, "events"), "");
    }

    #[test]
    fn fit_lines_cuts_a_single_huge_line() {
        let lines = vec!["x".repeat(5000), "y".to_string()];
        let text = fit_lines(&lines, 100, "findings");
        assert!(slack_len(&text) <= 100);
        assert!(text.contains('…'));
    }
}
