//! Byte codecs behind the JCL functions `b64encode`, `b64decode`, `md5`, `md5b64`.
//!
//! The original works on the Latin-1 bytes of a string (JCL.md Appendix D.7): a character
//! above U+00FF is an error, and decoded bytes come back as Latin-1 characters.

use super::ErrorKind;
use base64::alphabet;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;
use md5::{Digest, Md5};

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

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
pub fn old_base64_encode(bytes: &[u8], pad: bool) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b0 = chunk[0];
        let b1 = chunk.get(1).copied().unwrap_or(0);
        let b2 = chunk.get(2).copied().unwrap_or(0);
        let n = (u32::from(b0) << 16) | (u32::from(b1) << 8) | u32::from(b2);
        let idx = |shift: u32| char::from(B64[((n >> shift) & 63) as usize]);
        out.push(idx(18));
        out.push(idx(12));
        if chunk.len() > 1 {
            out.push(idx(6));
        } else if pad {
            out.push('=');
        }
        if chunk.len() > 2 {
            out.push(idx(0));
        } else if pad {
            out.push('=');
        }
    }
    out
}

/// Lenient Base64 decoding like MIME::Base64: characters outside the alphabet are skipped,
/// decoding stops at the first `=`, trailing partial bits are dropped.
pub fn old_base64_decode(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for c in text.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => break,
            _ => continue,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(((acc >> bits) & 0xff) as u8);
        }
    }
    out
}

const MD5_K: [u32; 64] = [
    0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee, 0xf57c0faf, 0x4787c62a, 0xa8304613, 0xfd469501,
    0x698098d8, 0x8b44f7af, 0xffff5bb1, 0x895cd7be, 0x6b901122, 0xfd987193, 0xa679438e, 0x49b40821,
    0xf61e2562, 0xc040b340, 0x265e5a51, 0xe9b6c7aa, 0xd62f105d, 0x02441453, 0xd8a1e681, 0xe7d3fbc8,
    0x21e1cde6, 0xc33707d6, 0xf4d50d87, 0x455a14ed, 0xa9e3e905, 0xfcefa3f8, 0x676f02d9, 0x8d2a4c8a,
    0xfffa3942, 0x8771f681, 0x6d9d6122, 0xfde5380c, 0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70,
    0x289b7ec6, 0xeaa127fa, 0xd4ef3085, 0x04881d05, 0xd9d4d039, 0xe6db99e5, 0x1fa27cf8, 0xc4ac5665,
    0xf4292244, 0x432aff97, 0xab9423a7, 0xfc93a039, 0x655b59c3, 0x8f0ccc92, 0xffeff47d, 0x85845dd1,
    0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1, 0xf7537e82, 0xbd3af235, 0x2ad7d2bb, 0xeb86d391,
];

const MD5_S: [u32; 16] = [7, 12, 17, 22, 5, 9, 14, 20, 4, 11, 16, 23, 6, 10, 15, 21];

/// The MD5 digest (RFC 1321) of some bytes.
pub fn old_md5(data: &[u8]) -> [u8; 16] {
    let mut state: [u32; 4] = [0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476];
    let bit_len = (data.len() as u64).wrapping_mul(8);
    let mut msg = data.to_vec();
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&bit_len.to_le_bytes());
    for block in msg.chunks_exact(64) {
        let mut m = [0u32; 16];
        for (i, w) in block.chunks_exact(4).enumerate() {
            m[i] = u32::from_le_bytes([w[0], w[1], w[2], w[3]]);
        }
        let [mut a, mut b, mut c, mut d] = state;
        for i in 0..64 {
            let (f, g) = match i / 16 {
                0 => ((b & c) | (!b & d), i),
                1 => ((d & b) | (!d & c), (5 * i + 1) % 16),
                2 => (b ^ c ^ d, (3 * i + 5) % 16),
                _ => (c ^ (b | !d), (7 * i) % 16),
            };
            let s = MD5_S[(i / 16) * 4 + i % 4];
            let rotated = a
                .wrapping_add(f)
                .wrapping_add(MD5_K[i])
                .wrapping_add(m[g])
                .rotate_left(s);
            a = d;
            d = c;
            c = b;
            b = b.wrapping_add(rotated);
        }
        state[0] = state[0].wrapping_add(a);
        state[1] = state[1].wrapping_add(b);
        state[2] = state[2].wrapping_add(c);
        state[3] = state[3].wrapping_add(d);
    }
    let mut out = [0u8; 16];
    for (i, w) in state.iter().enumerate() {
        out[i * 4..i * 4 + 4].copy_from_slice(&w.to_le_bytes());
    }
    out
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

    /// Decoding edge cases: junk, padding in odd places, lone symbols, non-zero trailing
    /// bits, non-ASCII text.
    const DECODE_CASES: &[&str] = &[
        "",
        "=",
        "==",
        "====",
        "A",
        "AA",
        "AAA",
        "AAAA",
        "AAAAA",
        "Zg",
        "Zg=",
        "Zg==",
        "Zh==",
        "Zh",
        "Zm8",
        "Zm9",
        "Zm9v",
        "Zm9vY",
        "Zm9vYg",
        "Zm9vYmE",
        "Zm9v=Zm9v",
        "Zm=9v",
        "Z m 9 v",
        "Zm9v\r\nYg==",
        "!!!",
        "-_-_",
        "/+/+",
        "+/+/+",
        "€Zm9v",
        "Zm9v€Yg",
        "Zm9v\u{0}Yg",
        "é",
        "ab=cd",
        "  Zg==  ",
        "Zg==Zg==",
        "////",
        "////A",
        "////AB",
        "\tZ\tm\t9\tv\t",
    ];

    #[test]
    fn base64_decode_matches_the_old_hand_written_one_on_edge_cases() {
        for text in DECODE_CASES {
            assert_eq!(base64_decode(text), old_base64_decode(text), "{text:?}");
        }
    }

    #[test]
    fn encoders_and_md5_match_the_old_hand_written_ones() {
        for len in 0..200usize {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 37 + len) as u8).collect();
            assert_eq!(md5(&bytes), old_md5(&bytes), "len {len}");
            for pad in [true, false] {
                let text = base64_encode(&bytes, pad);
                assert_eq!(text, old_base64_encode(&bytes, pad), "len {len}");
                assert_eq!(base64_decode(&text), bytes);
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn base64_decode_matches_the_old_one(text in "[A-Za-z0-9+/= \n\t!é_-]{0,40}") {
            proptest::prop_assert_eq!(base64_decode(&text), old_base64_decode(&text));
        }

        #[test]
        fn base64_decode_matches_the_old_one_on_any_text(text in ".{0,40}") {
            proptest::prop_assert_eq!(base64_decode(&text), old_base64_decode(&text));
        }

        #[test]
        fn encode_and_md5_match_the_old_ones(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..300), pad: bool) {
            proptest::prop_assert_eq!(base64_encode(&bytes, pad), old_base64_encode(&bytes, pad));
            proptest::prop_assert_eq!(md5(&bytes), old_md5(&bytes));
        }
    }
}
