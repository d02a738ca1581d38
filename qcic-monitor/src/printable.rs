//! Text from senders, made safe to show a person: in the log, a terminal
//! (`status`), an email or the page. A sender's failure reason or output
//! tail may hold anything; a control character there could forge a log
//! line, repaint or retitle a terminal, or add a field to an email.

use std::borrow::Cow;

use qcic_sdk::message::is_unprintable;

/// `text` with every control and bidirectional-formatting character
/// written as an escape (`\u{1b}`), line breaks included.
pub fn one_line(text: &str) -> Cow<'_, str> {
    escaped(text, false)
}

/// The same, keeping line breaks (`\n`) for text that has lines (a
/// command's output tail); a lone `\r` is escaped.
pub fn lines(text: &str) -> Cow<'_, str> {
    escaped(text, true)
}

fn escaped(text: &str, keep_newlines: bool) -> Cow<'_, str> {
    let bad = |c: char| is_unprintable(c) && !(keep_newlines && c == '\n');
    if !text.chars().any(bad) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if bad(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_are_escaped_and_plain_text_borrowed() {
        assert!(matches!(one_line("caf\u{e9} ok"), Cow::Borrowed(_)));
        assert_eq!(
            one_line("a\r\nb\u{1b}[2J\u{202e}"),
            "a\\r\\nb\\u{1b}[2J\\u{202e}"
        );
        assert_eq!(lines("a\r\nb\u{7}"), "a\\r\nb\\u{7}");
    }
}
