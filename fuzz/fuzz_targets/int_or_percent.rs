//! `parse_int_or_percent` on arbitrary ints and strings: never panics, accepts exactly what the
//! API server accepts for `maxUnavailable`/`maxSurge` (an int >= 0, or `^[0-9]+%$` up to 100%),
//! and scaling a valid value never overflows or exceeds the node count for a percentage.
//!
//! Input layout: first byte even -> `Int` from the next 4 bytes (little-endian i32), then a u32
//! node count; odd -> `String` from the rest (UTF-8), node count from the first byte.
#![no_main]

use daemonset_guard::k8s::intstr::{parse_int_or_percent, IntOrPercent};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use libfuzzer_sys::fuzz_target;

/// The API server's rule, written independently of the code under test.
fn expected_percent(s: &str) -> Option<i32> {
    let digits = s.strip_suffix('%')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let trimmed = digits.trim_start_matches('0');
    if trimmed.len() > 3 {
        return None;
    }
    let v: i32 = if trimmed.is_empty() {
        0
    } else {
        trimmed.parse().ok()?
    };
    (v <= 100).then_some(v)
}

fn check_scaled(v: IntOrPercent, nodes: u32) {
    let n = v.scaled(nodes);
    match v {
        IntOrPercent::Percent(p) => {
            assert!(n <= u64::from(nodes), "{p}% of {nodes} = {n} nodes");
            // Rounds up, as the DaemonSet controller does for maxUnavailable.
            assert!(n * 100 >= u64::from(p as u32) * u64::from(nodes));
        }
        IntOrPercent::Int(i) => assert_eq!(n, u64::from(i as u32)),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    if sel % 2 == 0 {
        let Some(int) = rest.get(..4) else {
            return;
        };
        let i = i32::from_le_bytes([int[0], int[1], int[2], int[3]]);
        let nodes = rest
            .get(4..8)
            .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
        match parse_int_or_percent(&IntOrString::Int(i)) {
            Ok(v) => {
                assert!(i >= 0, "{i} accepted");
                assert_eq!(v, IntOrPercent::Int(i));
                assert_eq!(v.is_zero(), i == 0);
                assert_eq!(v.to_string(), i.to_string());
                check_scaled(v, nodes);
            }
            Err(e) => {
                assert!(i < 0, "{i} rejected: {e}");
                assert!(!e.contains('\n'));
            }
        }
    } else {
        let Ok(s) = std::str::from_utf8(rest) else {
            return;
        };
        let nodes = u32::from(sel) * 1000 + 7;
        match (
            parse_int_or_percent(&IntOrString::String(s.to_string())),
            expected_percent(s),
        ) {
            (Ok(v), Some(p)) => {
                assert_eq!(v, IntOrPercent::Percent(p), "{s:?}");
                assert_eq!(v.is_zero(), p == 0);
                assert_eq!(v.to_string(), format!("{p}%"));
                check_scaled(v, nodes);
                check_scaled(v, u32::MAX);
            }
            (Err(e), None) => assert!(!e.contains('\n'), "multi-line error for {s:?}: {e}"),
            (Ok(v), None) => panic!("{s:?} accepted as {v:?}; the API server rejects it"),
            (Err(e), Some(p)) => panic!("{s:?} ({p}%) rejected: {e}"),
        }
    }
});
