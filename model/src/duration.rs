//! Durations on the command line: a number and a unit, `ms`, `s`, `m` or `h`.

/// Parses `1500ms`, `90s`, `10m` or `2h` into milliseconds.
pub fn parse_ms(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let hint = || format!("`{text}` is not a duration: write a number and a unit, like 1500ms, 90s, 10m or 2h");
    let number: u64 = number.parse().map_err(|_| hint())?;
    let scale = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return Err(hint()),
    };
    let ms = number.checked_mul(scale).ok_or_else(hint)?;
    if ms == 0 {
        return Err(format!("`{text}` is zero: a duration must be above zero"));
    }
    Ok(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_their_unit() {
        assert_eq!(parse_ms("1500ms"), Ok(1_500));
        assert_eq!(parse_ms("90s"), Ok(90_000));
        assert_eq!(parse_ms("10m"), Ok(600_000));
        assert_eq!(parse_ms("2h"), Ok(7_200_000));
    }

    #[test]
    fn bad_durations_say_how_to_write_one() {
        for bad in ["", "10", "m", "10 minutes", "-5s", "0s", "99999999999999999999h"] {
            let error = parse_ms(bad).unwrap_err();
            assert!(error.contains("duration"), "{bad}: {error}");
        }
    }
}
