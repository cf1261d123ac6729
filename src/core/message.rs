//! Text taken from a file (a name or key stored in it, or a parser's message that quotes
//! it) made fit for a one-line error message: a hostile or corrupt file must not be able
//! to spread an error over many lines or fill the screen with its contents.

/// The most characters of such text that one message keeps.
pub const MAX_QUOTED_CHARS: usize = 200;

/// `text` on one line and at most [`MAX_QUOTED_CHARS`] characters (then "…"): line
/// breaks become "; ", other control characters are escaped (`\u{1b}`), and leading and
/// trailing white space is dropped.
pub fn one_line(text: &str) -> String {
    let mut out = String::new();
    let mut kept = 0;
    let mut chars = text.trim().chars().peekable();
    while let Some(c) = chars.next() {
        let piece: String = match c {
            // "\r\n" is one break.
            '\r' if chars.peek() == Some(&'\n') => continue,
            '\n' | '\r' | '\u{2028}' | '\u{2029}' => "; ".to_owned(),
            c if c.is_control() => c.escape_default().collect(),
            c => c.to_string(),
        };
        // An escape counts as what it becomes.
        let len = piece.chars().count();
        if kept + len > MAX_QUOTED_CHARS {
            out.push('…');
            break;
        }
        out.push_str(&piece);
        kept += len;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_plain_text() {
        assert_eq!(one_line("  not a model file  "), "not a model file");
        assert_eq!(one_line(""), "");
        assert_eq!(one_line("naïve café"), "naïve café");
    }

    #[test]
    fn breaks_lines_and_escapes_control_characters() {
        assert_eq!(one_line("a\nb\r\nc\rd\u{2028}e"), "a; b; c; d; e");
        assert_eq!(
            one_line("bell\u{7}esc\u{1b}[31m"),
            "bell\\u{7}esc\\u{1b}[31m"
        );
        assert_eq!(one_line("tab\there"), "tab\\there");
    }

    #[test]
    fn cuts_long_text() {
        let long = "x".repeat(MAX_QUOTED_CHARS + 50);
        let cut = one_line(&long);
        assert_eq!(cut.chars().count(), MAX_QUOTED_CHARS + 1);
        assert!(cut.ends_with('…'));
        assert_eq!(
            one_line(&"y".repeat(MAX_QUOTED_CHARS)).chars().count(),
            MAX_QUOTED_CHARS
        );
        // Escapes count as what they become (found by fuzz/ torch_pickle: a name of
        // control characters grew six-fold).
        let escaped = one_line(&"\u{1a}".repeat(MAX_QUOTED_CHARS));
        assert_eq!(escaped.chars().count(), MAX_QUOTED_CHARS / 6 * 6 + 1);
        assert!(escaped.starts_with("\\u{1a}\\u{1a}"), "{escaped}");
    }
}
