//! Durations: Go style (`72h`, `1h30m`) or ISO-8601 (`PT72H`, `P3D`), in seconds.

use super::fault::shown;

/// Parses a duration into seconds: Go style (`72h`, `1h30m`, `90m`, `3600s`, plus `d` and `w`)
/// or ISO-8601 (`PT72H`, `P3D`, `P1W`, `P1DT12H`). Fractions are not accepted.
pub(crate) fn parse_duration(s: &str) -> Result<u64, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("empty duration".to_string());
    }
    if let Some(rest) = s.strip_prefix('P') {
        return parse_iso_duration(rest);
    }
    let mut total: u64 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(format!("expected a number at `{}`", shown(rest)));
        }
        let (num, tail) = rest.split_at(digits);
        let unit_len = tail.bytes().take_while(|b| b.is_ascii_alphabetic()).count();
        let (unit, tail) = tail.split_at(unit_len);
        let mult = match unit {
            "s" => 1,
            "m" => 60,
            "h" => 3_600,
            "d" => 86_400,
            "w" => 604_800,
            "" => return Err(format!("`{num}` has no unit (s, m, h, d or w)")),
            other => return Err(format!("unknown unit `{}` (s, m, h, d or w)", shown(other))),
        };
        total = add_units(total, num, mult)?;
        rest = tail;
    }
    Ok(total)
}

fn add_units(total: u64, num: &str, mult: u64) -> Result<u64, String> {
    num.parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .and_then(|n| total.checked_add(n))
        .ok_or_else(|| "duration too large".to_string())
}

fn parse_iso_duration(rest: &str) -> Result<u64, String> {
    let bad = || "not an ISO-8601 duration such as PT72H or P3D".to_string();
    let (date, time) = match rest.split_once('T') {
        Some((d, t)) => {
            if t.is_empty() {
                return Err(bad());
            }
            (d, Some(t))
        }
        None => (rest, None),
    };
    if date.is_empty() && time.is_none() {
        return Err(bad());
    }
    let mut total = 0u64;
    for (part, units) in [
        (date, &[('W', 604_800u64), ('D', 86_400)][..]),
        (time.unwrap_or(""), &[('H', 3_600), ('M', 60), ('S', 1)][..]),
    ] {
        let mut rest = part;
        let mut allowed = units;
        while !rest.is_empty() {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 || digits == rest.len() {
                return Err(bad());
            }
            let (num, tail) = rest.split_at(digits);
            let unit = tail.chars().next().ok_or_else(bad)?;
            let pos = allowed
                .iter()
                .position(|(u, _)| *u == unit)
                .ok_or_else(bad)?;
            total = add_units(total, num, allowed[pos].1)?;
            allowed = &allowed[pos + 1..];
            rest = &tail[unit.len_utf8()..];
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        for (s, secs) in [
            ("72h", 72 * 3600),
            ("1h30m", 5400),
            ("90m", 5400),
            ("3600s", 3600),
            ("2d", 172_800),
            ("0s", 0),
            ("PT72H", 72 * 3600),
            ("P3D", 3 * 86_400),
            ("P1W", 604_800),
            ("PT0H", 0),
            ("P1DT12H", 129_600),
            ("PT1H30M15S", 5415),
        ] {
            assert_eq!(parse_duration(s), Ok(secs), "{s}");
        }
        for s in [
            "", "72", "h", "1x", "P", "PT", "P1H", "PT1D", "P1.5D", "PT1M1H", "1h 30m", "-1h",
        ] {
            assert!(parse_duration(s).is_err(), "{s} should be refused");
        }
    }
}
