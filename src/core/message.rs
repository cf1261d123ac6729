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

/// A path as text that shows every byte of its name: valid UTF-8 as it is, other bytes as
/// `\xNN` (`caf\xE9.png`), where `Path::display` would put U+FFFD, which hides which
/// file it was and which some fonts cannot draw.
/// Elsewhere a name is not bytes: what cannot be shown as text is put as U+FFFD.
pub fn path_text(path: &std::path::Path) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        let mut out = String::new();
        for chunk in path.as_os_str().as_bytes().utf8_chunks() {
            out.push_str(chunk.valid());
            for b in chunk.invalid() {
                out.push_str(&format!("\\x{b:02X}"));
            }
        }
        out
    }
    #[cfg(not(unix))]
    {
        path.display().to_string()
    }
}

/// One line about a file left out of a job: the reason when it already ends with the
/// file (as image errors do), else `reason: file`.
pub fn skipped_line(path: &std::path::Path, reason: &str) -> String {
    let shown = path_text(path);
    if reason.ends_with(&shown) {
        reason.to_owned()
    } else {
        format!("{reason}: {shown}")
    }
}

/// A score with three significant digits (scores span several decades).
pub fn format_score(s: f64) -> String {
    if !s.is_finite() {
        return format!("{s}");
    }
    let a = s.abs();
    if a >= 100.0 {
        format!("{s:.0}")
    } else if a >= 10.0 {
        format!("{s:.1}")
    } else if a >= 1.0 {
        format!("{s:.2}")
    } else if a >= 0.001 || a == 0.0 {
        format!("{s:.3}")
    } else {
        // Three digits that say something, not "0.000".
        format!("{s:.2e}")
    }
}

/// [`format_score`] without trailing zeros ("20", "2.5", "0.125"): a round number on a
/// scale, such as the top of a heatmap's legend.
pub fn format_score_trimmed(s: f64) -> String {
    let text = format_score(s);
    if text.contains('.') && !text.contains('e') {
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_have_three_significant_digits() {
        assert_eq!(format_score(233.8), "234");
        assert_eq!(format_score(19.74), "19.7");
        assert_eq!(format_score(5.682), "5.68");
    }

    #[test]
    fn trimmed_scores_drop_trailing_zeros_only() {
        assert_eq!(format_score_trimmed(20.0), "20");
        assert_eq!(format_score_trimmed(2.5), "2.5");
        assert_eq!(format_score_trimmed(1000.0), "1000");
        assert_eq!(format_score_trimmed(12.34), "12.3");
        assert_eq!(format_score_trimmed(1.0), "1");
        assert_eq!(format_score_trimmed(0.125), "0.125");
        assert_eq!(format_score_trimmed(0.0), "0");
        // Scientific notation keeps its exponent's zeros.
        assert_eq!(format_score_trimmed(1.5e-10), format_score(1.5e-10));
        assert_eq!(format_score_trimmed(f64::INFINITY), "inf");
    }

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

    #[cfg(unix)]
    #[test]
    fn paths_show_every_byte_and_skipped_lines_name_the_file_once() {
        use std::ffi::OsStr;
        use std::os::unix::ffi::OsStrExt;
        let odd = std::path::Path::new(OsStr::from_bytes(b"/data/caf\xE9 \xFF\xFE.png"));
        assert_eq!(path_text(odd), "/data/caf\\xE9 \\xFF\\xFE.png");
        assert_eq!(
            path_text(std::path::Path::new("/data/ok é.png")),
            "/data/ok é.png"
        );
        assert_eq!(
            skipped_line(odd, "not a file: /data/caf\\xE9 \\xFF\\xFE.png"),
            "not a file: /data/caf\\xE9 \\xFF\\xFE.png"
        );
        assert_eq!(
            skipped_line(
                std::path::Path::new("/d/x.png"),
                "a folder, not an image file"
            ),
            "a folder, not an image file: /d/x.png"
        );
    }
}
