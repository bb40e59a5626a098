//! crypt(3) password hashes of the password file: MD5-crypt (`$1$`), SHA-256-crypt (`$5$`)
//! and SHA-512-crypt (`$6$`), as glibc's `crypt` and `openssl passwd -1/-5/-6` make them.
//!
//! The SHA rounds come from `sha-crypt` and the MD5 digest from `md-5`; what is left here
//! is the glue the crates leave out: MD5-crypt's 1000-round loop (no maintained crate does
//! `$1$`), taking a setting string apart and putting the result string together with the
//! crypt alphabet's Base64 (`base64ct`'s `Base64ShaCrypt`).

use base64ct::{Base64ShaCrypt, Encoding};
use md5::{Digest, Md5};

/// Why a crypt setting could not be hashed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptError {
    /// Not `$1$salt$`, `$5$salt$` or `$6$salt$` (an empty salt, another method, or the
    /// `rounds=` variant, which the password file does not use).
    #[error("unsupported crypt setting (want $1$, $5$ or $6$ with a salt)")]
    Unsupported,
}

/// The hash methods supported here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Method {
    Md5,
    Sha256,
    Sha512,
}

impl Method {
    /// Salts are cut to this many characters, as crypt(3) does.
    fn max_salt(self) -> usize {
        match self {
            Method::Md5 => 8,
            Method::Sha256 | Method::Sha512 => 16,
        }
    }

    fn id(self) -> &'static str {
        match self {
            Method::Md5 => "1",
            Method::Sha256 => "5",
            Method::Sha512 => "6",
        }
    }
}

/// Split `$<id>$<salt>[$<anything>]` into the method and the salt (cut like crypt(3)).
fn parse_setting(setting: &str) -> Result<(Method, &str), CryptError> {
    let rest = setting.strip_prefix('$').ok_or(CryptError::Unsupported)?;
    let (id, rest) = rest.split_once('$').ok_or(CryptError::Unsupported)?;
    let method = match id {
        "1" => Method::Md5,
        "5" => Method::Sha256,
        "6" => Method::Sha512,
        _ => return Err(CryptError::Unsupported),
    };
    let salt = rest.split('$').next().unwrap_or_default();
    if salt.is_empty() || salt.starts_with("rounds=") {
        return Err(CryptError::Unsupported);
    }
    // Cut on a character boundary: a salt is ASCII in practice, but the file is user data.
    let cut = salt
        .char_indices()
        .nth(method.max_salt())
        .map_or(salt.len(), |(i, _)| i);
    Ok((method, &salt[..cut]))
}

/// `crypt(token, setting)`: the full hash string `$<id>$<salt>$<hash>` for a setting
/// `$1$salt`, `$5$salt` or `$6$salt` (a trailing `$` and anything after it, such as the
/// hash part of a stored hash, are ignored).
///
/// ```
/// use jobcenter_server::crypt::crypt;
/// assert_eq!(
///     crypt("wantsThings", "$5$Re.J8ULljB$").unwrap(),
///     "$5$Re.J8ULljB$Zlp7EvuSXSqred7R/ONec5Wcx3sa0Di7r8jYj6OYJgB"
/// );
/// ```
pub fn crypt(token: &str, setting: &str) -> Result<String, CryptError> {
    let (method, salt) = parse_setting(setting)?;
    let (pw, salt_bytes) = (token.as_bytes(), salt.as_bytes());
    let encoded = match method {
        Method::Md5 => encode(&md5_crypt(pw, salt_bytes), &MD5_ORDER),
        Method::Sha256 => encode(
            &sha_crypt::sha256_crypt(pw, salt_bytes, sha_crypt::Params::RECOMMENDED),
            &SHA256_ORDER,
        ),
        Method::Sha512 => encode(
            &sha_crypt::sha512_crypt(pw, salt_bytes, sha_crypt::Params::RECOMMENDED),
            &SHA512_ORDER,
        ),
    };
    Ok(format!("${}${salt}${encoded}", method.id()))
}

/// A SHA-256-crypt hash of `token` with a fresh random 16-character salt, for writing a
/// password-file line (what `openssl passwd -5` prints).
pub fn hash_sha256(token: &str) -> String {
    let salt = Base64ShaCrypt::encode_string(&rand::random::<[u8; 12]>());
    // A salt of 16 crypt-alphabet characters is always a valid setting.
    crypt(token, &format!("$5${salt}$")).unwrap_or_default()
}

/// MD5-crypt (Poul-Henning Kamp's FreeBSD algorithm, `$1$`): the 16 raw digest bytes.
fn md5_crypt(pw: &[u8], salt: &[u8]) -> [u8; 16] {
    const MAGIC: &[u8] = b"$1$";
    let alternate = Md5::new()
        .chain_update(pw)
        .chain_update(salt)
        .chain_update(pw)
        .finalize();
    let mut ctx = Md5::new()
        .chain_update(pw)
        .chain_update(MAGIC)
        .chain_update(salt);
    for chunk in pw.chunks(16) {
        ctx.update(&alternate[..chunk.len()]);
    }
    // For each bit of the password's length, low bit first: a zero byte for a one bit, the
    // password's first byte for a zero bit.
    let mut n = pw.len();
    while n > 0 {
        if n & 1 == 1 {
            ctx.update([0u8]);
        } else {
            ctx.update(&pw[..1]);
        }
        n >>= 1;
    }
    let mut digest = ctx.finalize();
    for round in 0..1000 {
        let mut ctx = Md5::new();
        if round % 2 == 1 {
            ctx.update(pw);
        } else {
            ctx.update(digest);
        }
        if round % 3 != 0 {
            ctx.update(salt);
        }
        if round % 7 != 0 {
            ctx.update(pw);
        }
        if round % 2 == 1 {
            ctx.update(digest);
        } else {
            ctx.update(pw);
        }
        digest = ctx.finalize();
    }
    digest.into()
}

// The crypt string encodes the digest in groups of three bytes, least significant first,
// in an order of its own per method. Each table lists the digest bytes in that order, so
// that encoding the reordered bytes with the little-endian crypt Base64 gives the string.
// The groups are the specifications' `b64_from_24bit(B2, B1, B0)` calls read as B0 B1 B2.

/// MD5-crypt: (0,6,12) (1,7,13) (2,8,14) (3,9,15) (4,10,5), then byte 11 alone.
const MD5_ORDER: [usize; 16] = [12, 6, 0, 13, 7, 1, 14, 8, 2, 15, 9, 3, 5, 10, 4, 11];

/// SHA-256-crypt: (0,10,20) (21,1,11) (12,22,2) (3,13,23) (24,4,14) (15,25,5) (6,16,26)
/// (27,7,17) (18,28,8) (9,19,29), then (-,31,30).
const SHA256_ORDER: [usize; 32] = [
    20, 10, 0, 11, 1, 21, 2, 22, 12, 23, 13, 3, 14, 4, 24, 5, 25, 15, 26, 16, 6, 17, 7, 27, 8, 28,
    18, 29, 19, 9, 30, 31,
];

/// SHA-512-crypt: (0,21,42) (22,43,1) (44,2,23) (3,24,45) ... (62,20,41), then byte 63.
const SHA512_ORDER: [usize; 64] = [
    42, 21, 0, 1, 43, 22, 23, 2, 44, 45, 24, 3, 4, 46, 25, 26, 5, 47, 48, 27, 6, 7, 49, 28, 29, 8,
    50, 51, 30, 9, 10, 52, 31, 32, 11, 53, 54, 33, 12, 13, 55, 34, 35, 14, 56, 57, 36, 15, 16, 58,
    37, 38, 17, 59, 60, 39, 18, 19, 61, 40, 41, 20, 62, 63,
];

/// The digest reordered by `order`, in the crypt alphabet's little-endian Base64.
fn encode(digest: &[u8], order: &[usize]) -> String {
    let reordered: Vec<u8> = order.iter().map(|&i| digest[i]).collect();
    Base64ShaCrypt::encode_string(&reordered)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Printed by `openssl passwd -1/-5/-6 -salt SALT PASSWORD` (OpenSSL 3.0).
    const OPENSSL_VECTORS: &[(&str, &str)] = &[
        ("pw1", "$1$abcdefgh$CSewKYDMd6dmHkTqkKYk60"),
        ("pw6", "$1$saltsalt$pRmHVZe5Tr199NLta1EY2."),
        ("", "$1$Xy./z9$8l7rlphUf3z635FRUiehQ0"),
        (LONG, "$1$q$MAMLvu9Ik03bLLr8PFmNI."),
        ("café", "$1$utf8$ALMgF4EtWAZxsgXK7yBXo."),
        ("café", "$5$utf8$bsYq61vebM0zTmTooHdsrAb9XgYYrcdv2CuxPebKtp6"),
        ("pw1", "$5$abcdefgh$039Hv/0gWTexVhFwOZ16ap1QTskv.omwfoTWcF1l/O9"),
        ("pw6", "$5$saltsalt$GS.J0iOniXD56W.8I.HKCV/SniA7PIUamayUAJFekM7"),
        (LONG, "$5$q$TRuqTFlBwb8jlFK/4AGWz2eMmMce14p713VktkOWES7"),
        (
            "pw1",
            "$6$abcdefgh$BOw/nV5aU2HJ8o7otKMCN5S.MoSoxPoAUYewKjq5oSqs8UMghGB3x4G4HaPK7NZqL54npGT9hs/qRSokU.4Qt/",
        ),
        (
            "pw6",
            "$6$saltsalt$vqfwhgbpDQsmrvB6w5/8F5c4CO40.Qu2BBSXMRAH03mtpJ3D3UncG8x1f8qam566S8Gqa9EQmwIXTEp9knEjA.",
        ),
        (
            LONG,
            "$6$q$Rt3G6UK471NJFitZeRJtFDHuV2XHhy8P1LQaJu9e3nfC/dGQCr5Qi/TSOJZthZnml2e1RvOj9DhIK7yL2Rmju0",
        ),
    ];

    /// Longer than a SHA-512 block, to cover the length loops.
    const LONG: &str = "a much longer password than sixteen bytes, over 64 even, to cover the block loops 0123456789";

    #[test]
    fn openssl_passwd_vectors() {
        for (pw, hash) in OPENSSL_VECTORS {
            assert_eq!(crypt(pw, hash).as_deref(), Ok(*hash), "password {pw:?}");
        }
    }

    #[test]
    fn salts_are_cut_like_crypt3() {
        // `openssl passwd -5 -salt abcdefghijklmnopqrstu x` and `-1 -salt abcdefghijk x`
        assert_eq!(
            crypt("x", "$5$abcdefghijklmnopqrstu$").as_deref(),
            Ok("$5$abcdefghijklmnop$fiUnwzJyCDn7Dx53oezcP81DtfKy73q.P999JrS8fsB")
        );
        assert_eq!(
            crypt("x", "$1$abcdefghijk").as_deref(),
            Ok("$1$abcdefgh$znAnv9M.XU2pRYfmSs46h/")
        );
    }

    #[test]
    fn other_settings_are_refused() {
        for setting in [
            "",
            "plain",
            "$",
            "$1$",
            "$5$$abc",
            "$2b$10$abcdefghijklmnopqrstuu",
            "$5$rounds=5000$salt$xyz",
            "$7$salt$",
            "5$salt$",
        ] {
            assert_eq!(
                crypt("x", setting),
                Err(CryptError::Unsupported),
                "{setting:?}"
            );
        }
    }

    #[test]
    fn random_salted_hashes_verify_and_differ() {
        let a = hash_sha256("secret");
        let b = hash_sha256("secret");
        assert_ne!(a, b);
        assert!(a.starts_with("$5$"));
        assert_eq!(a.len(), "$5$".len() + 16 + 1 + 43);
        assert_eq!(crypt("secret", &a).as_deref(), Ok(a.as_str()));
        assert_ne!(crypt("Secret", &a).as_deref(), Ok(a.as_str()));
    }
}
