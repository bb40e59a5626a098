//! Property tests of the value model, the codecs and the regex matcher: laws that must hold
//! for any input, and no panics on arbitrary (user-supplied) data.

use jobcenter_engine::eval::codec;
use jobcenter_engine::eval::regex::Regex;
use jobcenter_engine::eval::value::{self, format_float, str_to_num, Num, Val};
use proptest::prelude::*;

fn significant_digits(s: &str) -> usize {
    let mantissa = s.split('e').next().unwrap_or("");
    mantissa
        .chars()
        .filter(|c| c.is_ascii_digit())
        .collect::<String>()
        .trim_start_matches('0')
        .len()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn integer_strings_numify_to_integers(i in any::<i64>()) {
        prop_assert_eq!(str_to_num(&i.to_string()), Num::Int(i128::from(i)));
        prop_assert_eq!(str_to_num(&format!("  {i}\n")), Num::Int(i128::from(i)));
    }

    #[test]
    fn any_string_numifies_without_panic(s in ".{0,40}") {
        let _ = str_to_num(&s);
        let _ = value::negate(&Val::Str(s.clone()));
        let _ = Val::Str(s).is_true();
    }

    #[test]
    fn float_formatting_is_15_significant_digits(f in any::<f64>().prop_filter("finite", |f| f.is_finite())) {
        let s = format_float(f);
        prop_assert!(significant_digits(&s) <= 15, "{}", s);
        let back: f64 = s.parse().unwrap_or_else(|_| panic!("unparsable {s}"));
        if f != 0.0 {
            prop_assert!(((back - f) / f).abs() <= 5e-15, "{} -> {}", f, s);
        }
        // Storing a float and formatting it again gives the same text.
        let stored = Val::Float(f).into_value();
        prop_assert_eq!(Val::from_value(stored).into_string().unwrap(), s);
    }

    #[test]
    fn integer_arithmetic_is_exact(a in any::<i32>(), b in any::<i32>()) {
        let (x, y) = (Val::Int(i128::from(a)), Val::Int(i128::from(b)));
        prop_assert_eq!(value::add(&x, &y).unwrap(), Val::Int(i128::from(a) + i128::from(b)));
        prop_assert_eq!(value::sub(&x, &y).unwrap(), Val::Int(i128::from(a) - i128::from(b)));
        prop_assert_eq!(value::mul(&x, &y).unwrap(), Val::Int(i128::from(a) * i128::from(b)));
    }

    #[test]
    fn modulus_has_the_sign_of_the_right_operand(a in any::<i64>(), b in any::<i64>().prop_filter("non-zero", |b| *b != 0)) {
        let r = value::modulus(&Val::Int(i128::from(a)), &Val::Int(i128::from(b))).unwrap();
        let Val::Int(r) = r else { panic!("not an integer") };
        prop_assert!(r == 0 || (r < 0) == (b < 0));
        prop_assert!(r.abs() < i128::from(b).abs());
        prop_assert_eq!((i128::from(a) - r) % i128::from(b), 0);
    }

    #[test]
    fn base64_round_trips(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let text = codec::base64_encode(&bytes, true);
        prop_assert_eq!(text.len() % 4, 0);
        prop_assert_eq!(codec::base64_decode(&text), bytes.clone());
        let latin1 = codec::latin1_string(&bytes);
        prop_assert_eq!(codec::latin1_bytes(&latin1).unwrap(), bytes);
    }

    #[test]
    fn literal_patterns_match_like_contains(needle in "[a-c]{0,4}", hay in "[a-d]{0,12}") {
        let re = Regex::new(&needle).unwrap();
        prop_assert_eq!(re.is_match(&hay), hay.contains(&needle));
        let anchored = Regex::new(&format!("^{needle}$")).unwrap();
        prop_assert_eq!(anchored.is_match(&hay), hay == needle);
    }

    #[test]
    fn arbitrary_patterns_never_panic(pattern in ".{0,16}", text in ".{0,32}") {
        if let Ok(re) = Regex::new(&pattern) {
            let _ = re.is_match(&text);
        }
    }
}
