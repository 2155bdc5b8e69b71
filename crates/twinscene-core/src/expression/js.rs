//! JavaScript's value conversions (number ↔ string, `toFixed`, `toPrecision`, `parseFloat`) as
//! far as expressions need them, and RFC 3339 timestamps for `age`.

/// `String(n)` in JavaScript: integers without a decimal point, exponent form outside
/// [1e-6, 1e21).
pub(crate) fn number_to_string(n: f64) -> String {
    if n.is_nan() {
        return "NaN".into();
    }
    if n.is_infinite() {
        return if n > 0.0 { "Infinity".into() } else { "-Infinity".into() };
    }
    if n == 0.0 {
        return "0".into();
    }
    let magnitude = n.abs();
    if (1e-6..1e21).contains(&magnitude) {
        return format!("{n}");
    }
    let text = format!("{n:e}");
    match text.split_once('e') {
        Some((mantissa, exponent)) if !exponent.starts_with('-') => format!("{mantissa}e+{exponent}"),
        _ => text,
    }
}

/// `Number(text)` in JavaScript: surrounding whitespace ignored, empty is 0, anything else that
/// is not a whole number literal is NaN.
pub(crate) fn string_to_number(text: &str) -> f64 {
    let text = text.trim();
    if text.is_empty() {
        return 0.0;
    }
    match text {
        "Infinity" | "+Infinity" => return f64::INFINITY,
        "-Infinity" => return f64::NEG_INFINITY,
        _ => {}
    }
    if let Some(hex) = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        return u64::from_str_radix(hex, 16).map_or(f64::NAN, |n| n as f64);
    }
    // Rust also accepts "inf", "NaN" and friends; JavaScript does not.
    let plain = text.bytes().all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'));
    if !plain {
        return f64::NAN;
    }
    text.parse().unwrap_or(f64::NAN)
}

/// `parseFloat(text)`: the longest number at the start of the text.
pub(crate) fn parse_float_prefix(text: &str) -> f64 {
    let text = text.trim_start();
    for infinity in ["Infinity", "+Infinity"] {
        if text.starts_with(infinity) {
            return f64::INFINITY;
        }
    }
    if text.starts_with("-Infinity") {
        return f64::NEG_INFINITY;
    }
    let candidates = text.char_indices().map(|(i, c)| i + c.len_utf8()).take(400);
    let mut best = f64::NAN;
    for end in candidates {
        let prefix = &text[..end];
        if prefix.bytes().all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'))
            && let Ok(n) = prefix.parse::<f64>()
        {
            best = n;
        }
    }
    best
}

/// `parseInt(text, radix)`.
pub(crate) fn parse_int_prefix(text: &str, radix: Option<f64>) -> f64 {
    let mut text = text.trim_start();
    let negative = text.starts_with('-');
    if negative || text.starts_with('+') {
        text = &text[1..];
    }
    let mut radix = radix.map_or(10, |r| r as u32);
    if radix == 0 {
        radix = 10;
    }
    if (radix == 16 || radix == 10) && (text.starts_with("0x") || text.starts_with("0X")) {
        text = &text[2..];
        radix = 16;
    }
    if !(2..=36).contains(&radix) {
        return f64::NAN;
    }
    let digits: Vec<u32> = text.chars().map_while(|c| c.to_digit(radix)).collect();
    if digits.is_empty() {
        return f64::NAN;
    }
    let value = digits.iter().fold(0.0, |acc, &d| acc * f64::from(radix) + f64::from(d));
    if negative { -value } else { value }
}

/// `n.toFixed(digits)`; ties round away from zero as in JavaScript.
pub(crate) fn to_fixed(n: f64, digits: usize) -> String {
    if !n.is_finite() || n.abs() >= 1e21 {
        return number_to_string(n);
    }
    let scale = 10f64.powi(digits as i32);
    let scaled = n.abs() * scale;
    if scaled.fract() == 0.5 && scaled < 9e15 {
        let rounded = (scaled.ceil() / scale) * n.signum();
        return format!("{rounded:.digits$}");
    }
    format!("{n:.digits$}")
}

/// `n.toPrecision(precision)`.
pub(crate) fn to_precision(n: f64, precision: usize) -> String {
    if !n.is_finite() {
        return number_to_string(n);
    }
    let exponential = format!("{:.*e}", precision.saturating_sub(1), n);
    let Some((mantissa, exponent)) = exponential.split_once('e') else { return exponential };
    let exponent: i64 = exponent.parse().unwrap_or(0);
    if exponent < -6 || exponent >= precision as i64 {
        let sign = if exponent >= 0 { "+" } else { "" };
        return format!("{mantissa}e{sign}{exponent}");
    }
    let decimals = (precision as i64 - 1 - exponent).max(0) as usize;
    format!("{n:.decimals$}")
}

/// Milliseconds since the Unix epoch of an RFC 3339 timestamp (`2022-04-05T21:26:00.21Z`,
/// `...+02:00`); `None` when the text is not one.
pub fn parse_rfc3339_millis(text: &str) -> Option<f64> {
    let bytes = text.as_bytes();
    let number = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = text.get(range)?;
        if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        part.parse().ok()
    };
    let year = number(0..4)?;
    let month = number(5..7)?;
    let day = number(8..10)?;
    let hour = number(11..13)?;
    let minute = number(14..16)?;
    let second = number(17..19)?;
    let separators_ok = bytes.get(4) == Some(&b'-')
        && bytes.get(7) == Some(&b'-')
        && matches!(bytes.get(10), Some(b'T' | b't' | b' '))
        && bytes.get(13) == Some(&b':')
        && bytes.get(16) == Some(&b':');
    if !separators_ok
        || !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut rest = text.get(19..)?;
    let mut fraction = 0.0;
    if let Some(after_dot) = rest.strip_prefix('.') {
        let digits = after_dot.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        fraction = format!("0.{}", &after_dot[..digits]).parse().ok()?;
        rest = &after_dot[digits..];
    }
    let offset_minutes = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            if rest.len() != 6 || rest.as_bytes()[3] != b':' {
                return None;
            }
            let hours: i64 = rest.get(1..3)?.parse().ok()?;
            let minutes: i64 = rest.get(4..6)?.parse().ok()?;
            sign * (hours * 60 + minutes)
        }
    };
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset_minutes * 60;
    Some(seconds as f64 * 1000.0 + fraction * 1000.0)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_index = (month + 9) % 12;
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_print_as_javascript_prints_them() {
        for (n, text) in [
            (1.0, "1"),
            (-0.0, "0"),
            (0.1 + 0.2, "0.30000000000000004"),
            (1e21, "1e+21"),
            (1.5e-7, "1.5e-7"),
            (123456.5, "123456.5"),
            (f64::NAN, "NaN"),
            (f64::NEG_INFINITY, "-Infinity"),
        ] {
            assert_eq!(number_to_string(n), text);
        }
    }

    #[test]
    fn strings_convert_to_numbers_as_in_javascript() {
        assert_eq!(string_to_number(" 42 "), 42.0);
        assert_eq!(string_to_number(""), 0.0);
        assert_eq!(string_to_number("0x1F"), 31.0);
        assert!(string_to_number("inf").is_nan());
        assert!(string_to_number("12px").is_nan());
        assert_eq!(parse_float_prefix("12.5px"), 12.5);
        assert!(parse_float_prefix("px").is_nan());
        assert_eq!(parse_int_prefix("ff", Some(16.0)), 255.0);
        assert_eq!(parse_int_prefix("-12.9", None), -12.0);
    }

    #[test]
    fn fixed_and_precision_formats() {
        assert_eq!(to_fixed(2.5, 0), "3");
        assert_eq!(to_fixed(-2.5, 0), "-3");
        assert_eq!(to_fixed(1.005, 2), "1.00");
        assert_eq!(to_fixed(21.456, 1), "21.5");
        assert_eq!(to_precision(123.456, 4), "123.5");
        assert_eq!(to_precision(0.000123, 2), "0.00012");
        assert_eq!(to_precision(123456.0, 2), "1.2e+5");
    }

    #[test]
    fn rfc3339_timestamps() {
        assert_eq!(parse_rfc3339_millis("1970-01-01T00:00:00Z"), Some(0.0));
        let fractional = parse_rfc3339_millis("2022-04-05T21:26:00.2177591Z").unwrap();
        assert!((fractional - 1_649_193_960_217.76).abs() < 1e-3, "{fractional}");
        assert_eq!(parse_rfc3339_millis("2022-04-05T23:26:00+02:00"), Some(1_649_193_960_000.0));
        assert_eq!(parse_rfc3339_millis("2000-02-29T00:00:00Z"), Some(951_782_400_000.0));
        for bad in [
            "",
            "2022-04-05",
            "2022-13-01T00:00:00Z",
            "2022-04-05T21:26:00",
            "2022-04-05T21:26:00.Z",
            "２０２２",
        ] {
            assert_eq!(parse_rfc3339_millis(bad), None, "{bad}");
        }
    }
}
