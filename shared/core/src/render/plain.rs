//! Plain text (e-mail bodies, SNS subjects, terminals): the one place that
//! makes untrusted strings safe to show outside Slack.
//!
//! A value from an event must not be able to forge lines of an e-mail
//! ("Findings: none"), break an SNS subject, or send escape sequences to a
//! terminal. So single-line values lose their line breaks and every control
//! character; subjects are also reduced to ASCII.

/// What ends a cut ASCII string.
pub const ASCII_ELLIPSIS: &str = "...";

/// An untrusted value on one line: control characters (line breaks, ESC,
/// ...) become spaces; cut to `max` characters with `…`.
pub fn one_line(s: &str, max: usize) -> String {
    let cleaned: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    truncate_chars(&cleaned, max, "…")
}

/// Untrusted multi-line text: line breaks kept (`\r\n` and `\r` become
/// `\n`), other control characters made spaces.
pub fn multi_line(s: &str) -> String {
    s.replace("\r\n", "\n")
        .chars()
        .map(|c| match c {
            '\n' | '\t' => c,
            '\r' => '\n',
            c if c.is_control() => ' ',
            c => c,
        })
        .collect()
}

/// One line of printable ASCII, at most `max` bytes: common typographic
/// characters transliterated (`·` → `-`, `…` → `...`, accented Latin letters
/// to their base letter), anything else dropped, whitespace runs collapsed,
/// cut with `...`.
pub fn ascii_line(s: &str, max: usize) -> String {
    let mut out = String::with_capacity(s.len().min(max.saturating_mul(2)));
    for c in s.chars() {
        if c.is_ascii_graphic() || c == ' ' {
            out.push(c);
        } else if c.is_whitespace() || c.is_control() {
            out.push(' ');
        } else if let Some(t) = transliterate(c) {
            out.push_str(t);
        }
    }
    let collapsed = out.split_whitespace().collect::<Vec<_>>().join(" ");
    truncate_chars(&collapsed, max, ASCII_ELLIPSIS)
}

/// Cut to at most `max` characters (including `marker`), on a character
/// boundary.
pub fn truncate_chars(s: &str, max: usize, marker: &str) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let marker_len = marker.chars().count();
    if max <= marker_len {
        return s.chars().take(max).collect();
    }
    let mut out: String = s.chars().take(max - marker_len).collect();
    out.push_str(marker);
    out
}

/// Cut to at most `max_bytes` UTF-8 bytes (including `marker`), on a
/// character boundary.
pub fn truncate_bytes(s: &str, max_bytes: usize, marker: &str) -> String {
    if s.len() <= max_bytes {
        return s.to_string();
    }
    let budget = max_bytes.saturating_sub(marker.len());
    let mut end = budget.min(s.len());
    while end > 0 && !s.is_char_boundary(end) {
        end -= 1;
    }
    let mut out = s[..end].to_string();
    if marker.len() <= max_bytes {
        out.push_str(marker);
    }
    out
}

/// ASCII stand-ins for characters a subject may plausibly contain.
fn transliterate(c: char) -> Option<&'static str> {
    Some(match c {
        '·' | '•' | '–' | '—' | '‐' | '−' => "-",
        '…' => "...",
        '‘' | '’' | 'ˋ' | '´' => "'",
        '“' | '”' | '«' | '»' => "\"",
        '→' => "->",
        'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'ā' => "a",
        'À' | 'Á' | 'Â' | 'Ã' | 'Ä' | 'Å' | 'Ā' => "A",
        'ç' | 'ć' | 'č' => "c",
        'Ç' | 'Ć' | 'Č' => "C",
        'è' | 'é' | 'ê' | 'ë' | 'ē' | 'ę' | 'ě' => "e",
        'È' | 'É' | 'Ê' | 'Ë' | 'Ē' | 'Ę' | 'Ě' => "E",
        'ì' | 'í' | 'î' | 'ï' | 'ī' => "i",
        'Ì' | 'Í' | 'Î' | 'Ï' | 'Ī' => "I",
        'ñ' | 'ń' | 'ň' => "n",
        'Ñ' | 'Ń' | 'Ň' => "N",
        'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' | 'ō' => "o",
        'Ò' | 'Ó' | 'Ô' | 'Õ' | 'Ö' | 'Ø' | 'Ō' => "O",
        'ù' | 'ú' | 'û' | 'ü' | 'ū' | 'ů' => "u",
        'Ù' | 'Ú' | 'Û' | 'Ü' | 'Ū' | 'Ů' => "U",
        'ý' | 'ÿ' => "y",
        'Ý' | 'Ÿ' => "Y",
        'ß' => "ss",
        'ł' => "l",
        'Ł' => "L",
        'ś' | 'š' => "s",
        'Ś' | 'Š' => "S",
        'ź' | 'ż' | 'ž' => "z",
        'Ź' | 'Ż' | 'Ž' => "Z",
        'æ' => "ae",
        'Æ' => "AE",
        'œ' => "oe",
        'Œ' => "OE",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_removes_line_breaks_and_escape_sequences() {
        assert_eq!(one_line("a\nFindings: none\r\n", 100), "a Findings: none  ");
        assert_eq!(one_line("\u{1b}[31mred", 100), " [31mred");
        assert_eq!(one_line("abcdef", 4), "abc…");
    }

    #[test]
    fn multi_line_keeps_lines_only() {
        assert_eq!(multi_line("a\r\nb\rc\u{1b}d"), "a\nb\nc d");
    }

    #[test]
    fn ascii_line_transliterates_and_strips() {
        assert_eq!(
            ascii_line("HIGH · Manual grant by José", 99),
            "HIGH - Manual grant by Jose"
        );
        assert_eq!(ascii_line("日本語 alice\n\tbob", 99), "alice bob");
        assert_eq!(ascii_line("a…", 99), "a...");
        let long = "x".repeat(200);
        let cut = ascii_line(&long, 99);
        assert_eq!(cut.len(), 99);
        assert!(cut.ends_with("..."));
    }

    #[test]
    fn truncate_bytes_is_char_boundary_safe() {
        assert_eq!(truncate_bytes("ééé", 5, ""), "éé");
        assert_eq!(truncate_bytes("ééé", 6, "!"), "ééé");
        assert_eq!(truncate_bytes("abcdef", 4, "..."), "a...");
        assert!(truncate_bytes(&"日".repeat(100), 10, "[cut]").len() <= 10);
    }
}
