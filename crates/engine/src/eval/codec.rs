//! Byte codecs behind the JCL functions `b64encode`, `b64decode`, `md5`, `md5b64`.
//!
//! The original works on the Latin-1 bytes of a string (docs/JCL.md Appendix D.7): a character
//! above U+00FF is an error, and decoded bytes come back as Latin-1 characters.

use super::ErrorKind;
use base64::alphabet;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;
use md5::{Digest, Md5};

/// The Latin-1 bytes of a string; `WideCharacter` for any character above U+00FF.
pub fn latin1_bytes(s: &str) -> Result<Vec<u8>, ErrorKind> {
    s.chars()
        .map(|c| u8::try_from(u32::from(c)).map_err(|_| ErrorKind::WideCharacter))
        .collect()
}

/// Bytes as a string of Latin-1 characters.
pub fn latin1_string(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| char::from(b)).collect()
}

/// Standard Base64 (with `=` padding when `pad`), no line breaks.
pub fn base64_encode(bytes: &[u8], pad: bool) -> String {
    if pad {
        STANDARD.encode(bytes)
    } else {
        STANDARD_NO_PAD.encode(bytes)
    }
}

/// Decodes what is left after the lenient clean-up of [`base64_decode`]: no padding, and
/// bits left over after the last whole byte are dropped whatever their value.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::RequireNone),
);

/// Lenient Base64 decoding like MIME::Base64: characters outside the alphabet are skipped,
/// decoding stops at the first `=`, trailing partial bits are dropped.
pub fn base64_decode(text: &str) -> Vec<u8> {
    let mut symbols: Vec<u8> = text
        .bytes()
        .take_while(|&c| c != b'=')
        .filter(|&c| c.is_ascii_alphanumeric() || c == b'+' || c == b'/')
        .collect();
    // One symbol alone carries 6 bits, not a byte: drop it as the partial bits it is.
    if symbols.len() % 4 == 1 {
        symbols.pop();
    }
    // Only alphabet symbols are left, in a length that decodes without padding.
    LENIENT.decode(&symbols).unwrap_or_default()
}

/// The MD5 digest (RFC 1321) of some bytes.
pub fn md5(data: &[u8]) -> [u8; 16] {
    Md5::digest(data).into()
}

/// Lower-case hex text of some bytes.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn md5_test_vectors() {
        assert_eq!(hex(&md5(b"")), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(hex(&md5(b"abc")), "900150983cd24fb0d6963f7d28e17f72");
        assert_eq!(
            hex(&md5(b"The quick brown fox jumps over the lazy dog")),
            "9e107d9d372bb6826bd81d3542a419d6"
        );
        let long = vec![b'a'; 1000];
        assert_eq!(hex(&md5(&long)), "cabe45dcc9ae5b66ba86600cca6b8ba8");
    }

    #[test]
    fn base64_round_trip() {
        assert_eq!(base64_encode(b"", true), "");
        assert_eq!(base64_encode(b"f", true), "Zg==");
        assert_eq!(base64_encode(b"fo", true), "Zm8=");
        assert_eq!(base64_encode(b"foo", true), "Zm9v");
        assert_eq!(base64_encode(b"foob", false), "Zm9vYg");
        assert_eq!(base64_decode("Zm9vYmFy"), b"foobar");
        assert_eq!(base64_decode("Zm9v\nYg=="), b"foob");
        assert_eq!(latin1_string(&base64_decode("/w==")), "\u{ff}");
        assert!(latin1_bytes("€").is_err());
    }

    /// Decoding edge cases (junk, padding in odd places, lone symbols, non-zero trailing
    /// bits, non-ASCII text), with what the hand-written decoder before the `base64` crate
    /// gave for them.
    const DECODE_CASES: &[(&str, &[u8])] = &[
        ("", b""),
        ("=", b""),
        ("==", b""),
        ("====", b""),
        ("A", b""),
        ("AA", b"\0"),
        ("AAA", b"\0\0"),
        ("AAAA", b"\0\0\0"),
        ("AAAAA", b"\0\0\0"),
        ("Zg", b"f"),
        ("Zg=", b"f"),
        ("Zg==", b"f"),
        ("Zh==", b"f"),
        ("Zh", b"f"),
        ("Zm8", b"fo"),
        ("Zm9", b"fo"),
        ("Zm9v", b"foo"),
        ("Zm9vY", b"foo"),
        ("Zm9vYg", b"foob"),
        ("Zm9vYmE", b"fooba"),
        ("Zm9v=Zm9v", b"foo"),
        ("Zm=9v", b"f"),
        ("Z m 9 v", b"foo"),
        ("Zm9v\r\nYg==", b"foob"),
        ("!!!", b""),
        ("-_-_", b""),
        ("/+/+", b"\xff\xef\xfe"),
        ("+/+/+", b"\xfb\xff\xbf"),
        ("€Zm9v", b"foo"),
        ("Zm9v€Yg", b"foob"),
        ("Zm9v\0Yg", b"foob"),
        ("é", b""),
        ("ab=cd", b"i"),
        ("  Zg==  ", b"f"),
        ("Zg==Zg==", b"f"),
        ("////", b"\xff\xff\xff"),
        ("////A", b"\xff\xff\xff"),
        ("////AB", b"\xff\xff\xff\0"),
        ("\tZ\tm\t9\tv\t", b"foo"),
    ];

    #[test]
    fn lenient_base64_decode_edge_cases() {
        for (text, bytes) in DECODE_CASES {
            assert_eq!(base64_decode(text), *bytes, "{text:?}");
        }
    }

    proptest::proptest! {
        /// Encoding round-trips, padded or not.
        #[test]
        fn base64_round_trip_any_bytes(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..300), pad: bool) {
            let text = base64_encode(&bytes, pad);
            proptest::prop_assert_eq!(text.len().is_multiple_of(4), pad || bytes.len().is_multiple_of(3));
            proptest::prop_assert_eq!(base64_decode(&text), bytes);
        }

        /// Junk between the symbols changes nothing, and neither does anything after `=`.
        #[test]
        fn base64_decode_skips_junk(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..60), junk in "[ \n\t!é_-]{1,3}", tail in ".{0,10}") {
            let text = base64_encode(&bytes, false);
            let mixed: String = text.chars().flat_map(|c| [c].into_iter().chain(junk.chars())).collect();
            proptest::prop_assert_eq!(base64_decode(&format!("{mixed}={tail}")), bytes);
        }
    }
}
