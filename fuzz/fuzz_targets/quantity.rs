//! `Quantity::parse` on arbitrary UTF-8: never panics, and the parsed values form a total order
//! consistent with equality and hashing. The input is split at NUL bytes into up to three
//! quantities so that ordering between different values (antisymmetry, transitivity) is checked
//! too, plus identities that must hold for any plain integer (`n` = `n000m`, `nk` = `n000`).
#![no_main]

use std::cmp::Ordering;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

use daemonset_guard::k8s::quantity::Quantity;
use libfuzzer_sys::fuzz_target;

fn hash_of(q: &Quantity) -> u64 {
    let mut h = DefaultHasher::new();
    q.hash(&mut h);
    h.finish()
}

fn parse_checked(s: &str) -> Option<Quantity> {
    match Quantity::parse(s) {
        Ok(q) => {
            assert_eq!(q.cmp(&q), Ordering::Equal, "{s:?} is not equal to itself");
            assert_eq!(q.partial_cmp(&q), Some(Ordering::Equal));
            assert_eq!(q, q.clone());
            assert_eq!(q.to_string(), s, "Display must print the text as written");
            let again = Quantity::parse(&q.to_string()).expect("the printed text parses again");
            assert_eq!(again.cmp(&q), Ordering::Equal);
            assert_eq!(hash_of(&again), hash_of(&q));
            assert!(
                !(q.is_zero() && q.is_negative()),
                "{s:?}: zero is never negative"
            );
            Some(q)
        }
        Err(e) => {
            let msg = e.to_string();
            // Messages end up in one-line admission warnings and lint reports.
            assert!(!msg.contains('\n'), "multi-line error for {s:?}: {msg}");
            assert_eq!(e.value, s);
            None
        }
    }
}

fn check_pair(a: &Quantity, b: &Quantity) {
    let ab = a.cmp(b);
    assert_eq!(
        ab,
        b.cmp(a).reverse(),
        "{a} vs {b}: cmp is not antisymmetric"
    );
    assert_eq!(
        a == b,
        ab == Ordering::Equal,
        "{a} vs {b}: eq disagrees with cmp"
    );
    assert_eq!(a.partial_cmp(b), Some(ab));
    if a == b {
        assert_eq!(hash_of(a), hash_of(b), "{a} == {b} but their hashes differ");
    }
}

/// For a plain integer literal, unit suffixes must scale exactly.
fn check_scaling(s: &str) {
    // Up to 15 digits: n * 2^10 stays below 2^63, where apimachinery caps binary-suffixed values
    // (so a huge `nKi` is smaller than a huge decimal `n`, as in the API server).
    if s.is_empty() || s.len() > 15 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return;
    }
    let base = Quantity::parse(s).expect("digits are a quantity");
    for (scaled, plain) in [
        (format!("{s}000m"), s.to_string()),
        (format!("{s}k"), format!("{s}000")),
        (format!("{s}M"), format!("{s}000000")),
        (format!("{s}e3"), format!("{s}000")),
        (format!("{s}000000n"), format!("{s}m")),
    ] {
        let x = Quantity::parse(&scaled).expect("suffixed digits parse");
        let y = Quantity::parse(&plain).expect("suffixed digits parse");
        assert_eq!(x, y, "{scaled} != {plain}");
    }
    let ki = Quantity::parse(&format!("{s}Ki")).expect("suffixed digits parse");
    if base.is_zero() {
        assert!(ki.is_zero());
    } else {
        assert!(ki > base, "{s}Ki <= {s}");
    }
    let neg = Quantity::parse(&format!("-{s}")).expect("negative digits parse");
    assert!(neg <= base);
    assert_eq!(neg.is_negative(), !base.is_zero());
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let parts: Vec<&str> = text.splitn(3, '\0').collect();
    let parsed: Vec<Option<Quantity>> = parts.iter().map(|p| parse_checked(p)).collect();
    for p in &parts {
        check_scaling(p);
    }
    let ok: Vec<&Quantity> = parsed.iter().flatten().collect();
    for a in &ok {
        for b in &ok {
            check_pair(a, b);
        }
    }
    if let [a, b, c] = ok[..] {
        for (x, y, z) in [
            (a, b, c),
            (a, c, b),
            (b, a, c),
            (b, c, a),
            (c, a, b),
            (c, b, a),
        ] {
            if x <= y && y <= z {
                assert!(x <= z, "{x} <= {y} <= {z} but not {x} <= {z}");
            }
        }
    }
});
