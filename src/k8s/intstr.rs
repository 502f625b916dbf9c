//! Int-or-percent values (`maxUnavailable`, `maxSurge`) as the API server reads and validates
//! them (`k8s.io/apimachinery/pkg/util/intstr`, `pkg/apis/apps/validation`).

use std::fmt;

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// A valid int-or-percent value, as the API server accepts it for rolling updates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IntOrPercent {
    /// A number of nodes (>= 0).
    Int(i32),
    /// A percentage of nodes, 0 to 100.
    Percent(i32),
}

impl IntOrPercent {
    /// Whether the value counts as zero for the "exactly one non-zero" rule (`0` and `"0%"`).
    pub fn is_zero(self) -> bool {
        matches!(self, IntOrPercent::Int(0) | IntOrPercent::Percent(0))
    }

    /// The number of nodes out of `total`, rounding percentages up as the DaemonSet controller
    /// does (`GetScaledValueFromIntOrPercent(v, total, roundUp=true)`).
    pub fn scaled(self, total: u32) -> u64 {
        match self {
            IntOrPercent::Int(n) => u64::try_from(n).unwrap_or(0),
            IntOrPercent::Percent(p) => {
                let p = u64::try_from(p).unwrap_or(0);
                (p * u64::from(total)).div_ceil(100)
            }
        }
    }
}

impl fmt::Display for IntOrPercent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IntOrPercent::Int(n) => write!(f, "{n}"),
            IntOrPercent::Percent(p) => write!(f, "{p}%"),
        }
    }
}

/// Parses an int-or-percent the way the API server validates `maxUnavailable`/`maxSurge`: an
/// integer must be >= 0; a string must match `^[0-9]+%$` and be at most 100%. The error says what
/// is wrong with the value (without the field name) and how to write it.
pub fn parse_int_or_percent(v: &IntOrString) -> Result<IntOrPercent, String> {
    match v {
        IntOrString::Int(n) if *n >= 0 => Ok(IntOrPercent::Int(*n)),
        IntOrString::Int(n) => Err(format!(
            "{n} is not a valid value: it must be 0 or more (a number of nodes)"
        )),
        IntOrString::String(s) => parse_percent(s),
    }
}

fn parse_percent(s: &str) -> Result<IntOrPercent, String> {
    let digits = s.strip_suffix('%').unwrap_or("");
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
            // The commonest mistake: a quoted number. Suggest the integer only when it is one.
            return Err(match s.parse::<i32>() {
                Ok(n) => format!(
                    "{s:?} is not a valid value: a string must be a percentage such as \"5%\"; use {n} (an integer) for {n} nodes"
                ),
                Err(_) => format!(
                    "{s:?} is not a valid value: a string must be a percentage such as \"5%\""
                ),
            });
        }
        return Err(format!(
            "{s:?} is not a valid value: a string must be a whole percentage such as \"5%\" (digits then %, from 0% to 100%), or use an integer number of nodes"
        ));
    }
    // Digits only, so the sole parse failure is overflow: far above 100%, as Go's Atoi clamps.
    match digits.parse::<u64>() {
        Ok(p) if p <= 100 => Ok(IntOrPercent::Percent(i32::try_from(p).unwrap_or(100))),
        _ => Err(format!(
            "{s:?} is not a valid value: must not be greater than 100%"
        )),
    }
}

/// The number the API server's `getIntOrPercentValue` reads from an int-or-percent: the integer;
/// the percentage of a valid percent string; otherwise Go's `strconv.Atoi` of the string (an
/// optional sign and digits, clamped to the int64 range; anything else is 0).
pub fn api_int_value(v: &IntOrString) -> i64 {
    let s = match v {
        IntOrString::Int(n) => return i64::from(*n),
        IntOrString::String(s) => s,
    };
    let text = match s.strip_suffix('%') {
        Some(d) if !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()) => d,
        _ => s.as_str(),
    };
    let (negative, digits) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return 0;
    }
    match text.parse::<i64>() {
        Ok(n) => n,
        Err(_) if negative => i64::MIN,
        Err(_) => i64::MAX,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_int_or_percent_like_the_api_server() {
        use IntOrPercent::*;
        let ok: &[(IntOrString, IntOrPercent)] = &[
            (IntOrString::Int(0), Int(0)),
            (IntOrString::Int(5), Int(5)),
            (IntOrString::String("0%".into()), Percent(0)),
            (IntOrString::String("5%".into()), Percent(5)),
            (IntOrString::String("050%".into()), Percent(50)),
            (IntOrString::String("100%".into()), Percent(100)),
        ];
        for (input, want) in ok {
            assert_eq!(parse_int_or_percent(input), Ok(*want), "{input:?}");
        }
        let bad = [
            IntOrString::Int(-1),
            IntOrString::String("5".into()),
            IntOrString::String("-5%".into()),
            IntOrString::String("5.5%".into()),
            IntOrString::String("101%".into()),
            IntOrString::String("99999999999999999999999%".into()),
            IntOrString::String("%".into()),
            IntOrString::String("".into()),
            IntOrString::String(" 5%".into()),
            IntOrString::String("5 %".into()),
            IntOrString::String("+5%".into()),
            IntOrString::String("five".into()),
        ];
        for input in &bad {
            assert!(parse_int_or_percent(input).is_err(), "{input:?}");
        }
        assert_eq!(
            parse_int_or_percent(&IntOrString::String("5".into())).unwrap_err(),
            "\"5\" is not a valid value: a string must be a percentage such as \"5%\"; use 5 (an integer) for 5 nodes"
        );
        assert!(parse_int_or_percent(&IntOrString::String("101%".into()))
            .unwrap_err()
            .contains("greater than 100%"));
    }

    #[test]
    fn scales_percentages_rounding_up() {
        assert_eq!(IntOrPercent::Percent(25).scaled(100), 25);
        assert_eq!(IntOrPercent::Percent(10).scaled(5), 1);
        assert_eq!(IntOrPercent::Percent(1).scaled(1), 1);
        assert_eq!(IntOrPercent::Percent(0).scaled(1000), 0);
        assert_eq!(IntOrPercent::Percent(33).scaled(10), 4);
        assert_eq!(IntOrPercent::Percent(100).scaled(0), 0);
        assert_eq!(IntOrPercent::Int(7).scaled(3), 7);
    }

    /// `getIntOrPercentValue` of pkg/apis/apps/validation: a valid percent is its number, any
    /// other string is `strconv.Atoi` of it (0 when that fails, clamped when it overflows).
    #[test]
    fn reads_int_or_percent_values_like_the_api_server() {
        let cases = [
            (IntOrString::Int(-1), -1),
            (IntOrString::Int(0), 0),
            (IntOrString::String("5%".into()), 5),
            (IntOrString::String("0%".into()), 0),
            (IntOrString::String("5".into()), 5),
            (IntOrString::String("+5".into()), 5),
            (IntOrString::String("-5".into()), -5),
            (IntOrString::String("5.5%".into()), 0),
            (IntOrString::String("-5%".into()), 0),
            (IntOrString::String(" 5%".into()), 0),
            (IntOrString::String("%".into()), 0),
            (IntOrString::String("".into()), 0),
            (
                IntOrString::String("99999999999999999999%".into()),
                i64::MAX,
            ),
        ];
        for (v, want) in cases {
            assert_eq!(api_int_value(&v), want, "{v:?}");
        }
    }
}
