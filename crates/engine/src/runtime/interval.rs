//! Interval strings (docs/JCL.md Appendix B) as used by action `timeout`, retry `interval`, `sleep`.

/// Parse an interval string to seconds (may be negative). Months count 30 days and years
/// 365.25 days (the original adds them calendar-based; the difference only matters for
/// intervals of months). `None` if the text is not an interval.
pub fn parse_interval(text: &str) -> Option<f64> {
    let mut s = text.trim();
    if let Some(rest) = s.strip_prefix('@') {
        s = rest.trim_start();
    }
    let mut negate = false;
    if let Some(rest) = s.strip_suffix("ago") {
        negate = true;
        s = rest.trim_end();
    }
    if s.is_empty() {
        return None;
    }
    let secs = if s.starts_with('P') || s.starts_with('p') {
        parse_iso(&s[1..])?
    } else {
        parse_words(s)?
    };
    Some(if negate { -secs } else { secs })
}

fn unit_seconds(unit: &str) -> Option<f64> {
    let u = unit.to_ascii_lowercase();
    Some(match u.as_str() {
        "microsecond" | "microseconds" | "us" | "usec" | "usecs" => 1e-6,
        "millisecond" | "milliseconds" | "ms" | "msec" | "msecs" => 1e-3,
        "second" | "seconds" | "sec" | "secs" | "s" => 1.0,
        "minute" | "minutes" | "min" | "mins" | "m" => 60.0,
        "hour" | "hours" | "hr" | "hrs" | "h" => 3600.0,
        "day" | "days" | "d" => 86400.0,
        "week" | "weeks" | "w" => 7.0 * 86400.0,
        "month" | "months" | "mon" | "mons" => 30.0 * 86400.0,
        "year" | "years" | "y" | "yr" | "yrs" => 365.25 * 86400.0,
        _ => return None,
    })
}

/// `[-]HH:MM[:SS[.frac]]`
fn parse_clock(tok: &str) -> Option<f64> {
    let (neg, body) = match tok.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, tok.strip_prefix('+').unwrap_or(tok)),
    };
    let parts: Vec<&str> = body.split(':').collect();
    if parts.len() < 2 || parts.len() > 3 {
        return None;
    }
    let h: f64 = parts[0].parse().ok()?;
    let m: f64 = parts[1].parse().ok()?;
    let s: f64 = match parts.get(2) {
        Some(p) => p.parse().ok()?,
        None => 0.0,
    };
    let v = h * 3600.0 + m * 60.0 + s;
    Some(if neg { -v } else { v })
}

fn parse_number(tok: &str) -> Option<f64> {
    if tok.is_empty() || !tok.chars().any(|c| c.is_ascii_digit()) {
        return None;
    }
    if !tok
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '.' | '-' | '+' | 'e' | 'E'))
    {
        return None;
    }
    tok.parse().ok()
}

fn parse_words(s: &str) -> Option<f64> {
    let mut total = 0.0;
    let mut pending: Option<f64> = None;
    let mut seen = false;
    for tok in s.split_whitespace() {
        if tok.contains(':') {
            if pending.is_some() {
                return None;
            }
            total += parse_clock(tok)?;
            seen = true;
            continue;
        }
        if let Some(n) = pending.take() {
            total += n * unit_seconds(tok)?;
            seen = true;
            continue;
        }
        if let Some(n) = parse_number(tok) {
            pending = Some(n);
            continue;
        }
        // number glued to its unit: `5s`, `10min`
        let split = tok
            .find(|c: char| c.is_ascii_alphabetic())
            .filter(|&i| i > 0)?;
        let n = parse_number(&tok[..split])?;
        total += n * unit_seconds(&tok[split..])?;
        seen = true;
    }
    if let Some(n) = pending {
        total += n; // a bare trailing number counts as seconds
        seen = true;
    }
    seen.then_some(total)
}

/// ISO 8601 duration after the `P`: `nYnMnWnDTnHnMnS`.
fn parse_iso(s: &str) -> Option<f64> {
    let mut total = 0.0;
    let mut in_time = false;
    let mut num = String::new();
    let mut any = false;
    for c in s.chars() {
        match c {
            'T' | 't' => in_time = true,
            '0'..='9' | '.' | '-' => num.push(c),
            _ => {
                let n: f64 = num.parse().ok()?;
                num.clear();
                let unit = match (c.to_ascii_uppercase(), in_time) {
                    ('Y', false) => 365.25 * 86400.0,
                    ('M', false) => 30.0 * 86400.0,
                    ('W', false) => 7.0 * 86400.0,
                    ('D', false) => 86400.0,
                    ('H', true) => 3600.0,
                    ('M', true) => 60.0,
                    ('S', true) => 1.0,
                    _ => return None,
                };
                total += n * unit;
                any = true;
            }
        }
    }
    (any && num.is_empty()).then_some(total)
}

#[cfg(test)]
mod tests {
    use super::parse_interval;

    #[test]
    fn forms_of_appendix_b() {
        assert_eq!(parse_interval("5"), Some(5.0));
        assert_eq!(parse_interval("11.11"), Some(11.11));
        assert_eq!(parse_interval("2 seconds"), Some(2.0));
        assert_eq!(parse_interval("1 day 2 hours"), Some(93600.0));
        assert_eq!(parse_interval("5 minutes"), Some(300.0));
        assert_eq!(parse_interval("1 day 01:30:00"), Some(86400.0 + 5400.0));
        assert_eq!(parse_interval("@ 3 min ago"), Some(-180.0));
        assert_eq!(parse_interval("PT30S"), Some(30.0));
        assert_eq!(parse_interval("P1DT2H"), Some(93600.0));
        assert_eq!(parse_interval("10 milliseconds"), Some(0.01));
        assert_eq!(parse_interval("soon"), None);
        assert_eq!(parse_interval(""), None);
        assert_eq!(parse_interval("5 parsecs"), None);
    }
}
