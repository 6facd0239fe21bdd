//! Text for status, Events and error messages: bounded, cut on character boundaries.
//! Here, not in the controllers, because connectors bound response bodies the same way.

/// `s` cut to at most `max` bytes on a character boundary, with an ellipsis when cut.
pub fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::truncate;

    #[test]
    fn truncate_keeps_short_text_and_cuts_on_char_boundaries() {
        assert_eq!(truncate("short", 10), "short");
        let cut = truncate("ééééééééé", 8);
        assert!(cut.len() <= 8, "{cut}");
        assert!(cut.ends_with('…'));
    }
}
