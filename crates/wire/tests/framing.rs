//! Netstring framing: checklist C2–C8, the d01–d18 captures, and split-stream properties.

use bytes::{Bytes, BytesMut};
use jobcenter_wire::{
    classify, encode_frame, frame, FrameError, NetstringCodec, CLIENT_MAX_FRAME, SERVER_MAX_FRAME,
};
use proptest::prelude::*;
use tokio_util::codec::{Decoder, Encoder};

const PING: &str = r#"{"jsonrpc":"2.0","id":"p","method":"ping","params":{}}"#;

/// Feed `chunks` one after the other; collect frames until the first error.
fn feed(codec: &mut NetstringCodec, chunks: &[&[u8]]) -> (Vec<Bytes>, Option<FrameError>) {
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(f)) => out.push(f),
                Ok(None) => break,
                Err(e) => return (out, Some(e)),
            }
        }
    }
    (out, None)
}

fn server() -> NetstringCodec {
    NetstringCodec::new(SERVER_MAX_FRAME)
}

#[test]
fn c2_length_counts_utf8_bytes() {
    let payload = r#"{"msg":"Grüße"}"#;
    assert_eq!(payload.chars().count(), 15);
    assert_eq!(
        &frame(payload.as_bytes())[..],
        r#"17:{"msg":"Grüße"},"#.as_bytes()
    );
    let (frames, err) = feed(&mut server(), &[r#"17:{"msg":"Grüße"},"#.as_bytes()]);
    assert!(err.is_none());
    assert_eq!(&frames[0][..], payload.as_bytes());
}

#[test]
fn c3_one_byte_per_write_decodes_the_same() {
    let wire = frame(PING.as_bytes());
    let chunks: Vec<&[u8]> = wire.chunks(1).collect();
    let (frames, err) = feed(&mut server(), &chunks);
    assert!(err.is_none());
    assert_eq!(frames, vec![Bytes::from_static(PING.as_bytes())]);
}

#[test]
fn c4_two_frames_in_one_write_in_order() {
    let mut wire = BytesMut::new();
    encode_frame(b"first", &mut wire);
    encode_frame(b"second", &mut wire);
    let (frames, err) = feed(&mut server(), &[&wire]);
    assert!(err.is_none());
    assert_eq!(frames, vec![Bytes::from("first"), Bytes::from("second")]);
}

#[test]
fn c5_server_limit_checked_on_header() {
    // Only the header has arrived: already an error, before any body byte.
    let (_, err) = feed(&mut server(), &[b"1000000:"]);
    match err {
        Some(FrameError::TooBig { declared, max }) => {
            assert_eq!((declared, max), (1_000_000, 999_999));
        }
        other => panic!("expected TooBig, got {other:?}"),
    }
    // Exactly 999999 is accepted: the decoder waits for the body.
    let (frames, err) = feed(&mut server(), &[b"999999:{"]);
    assert!(err.is_none() && frames.is_empty());
    let body = vec![b'x'; 999_999];
    let wire = frame(&body);
    let (frames, err) = feed(&mut server(), &[&wire]);
    assert!(err.is_none());
    assert_eq!(frames[0].len(), 999_999);
    // The client limit is 16 MiB.
    let (_, err) = feed(&mut NetstringCodec::new(CLIENT_MAX_FRAME), &[b"16777217:"]);
    assert!(matches!(err, Some(FrameError::TooBig { .. })));
    let (_, err) = feed(&mut NetstringCodec::new(CLIENT_MAX_FRAME), &[b"16777216:"]);
    assert!(err.is_none());
}

#[test]
fn c6_wrong_trailer_is_fatal() {
    let (_, err) = feed(&mut server(), &[b"5:hello;"]);
    assert!(matches!(err, Some(FrameError::MissingComma)));
    assert_eq!(
        FrameError::MissingComma.to_string(),
        "no trailing , in chunk"
    );
}

#[test]
fn c7_writer_never_emits_leading_zeros_or_whitespace() {
    let mut codec = server();
    for len in [0usize, 1, 9, 10, 99, 100, 1000, 65_536] {
        let payload = vec![b'a'; len];
        let mut dst = BytesMut::new();
        codec.encode(&payload[..], &mut dst).expect("encodes");
        let colon = dst.iter().position(|&b| b == b':').expect("colon");
        let header = std::str::from_utf8(&dst[..colon]).expect("ascii");
        assert_eq!(header, len.to_string());
        assert!(header == "0" || !header.starts_with('0'));
        assert_eq!(dst.len(), colon + 1 + len + 1);
        assert_eq!(dst[dst.len() - 1], b',');
        let mut dst2 = BytesMut::new();
        codec
            .encode(Bytes::from(payload), &mut dst2)
            .expect("encodes");
        assert_eq!(dst, dst2);
    }
}

#[test]
fn c8_non_digit_length_is_fatal() {
    for bad in [&b"1a:"[..], b"abc:", b" 5:", b"+5:", b"5 :"] {
        let (_, err) = feed(&mut server(), &[bad]);
        assert!(
            matches!(err, Some(FrameError::NonDigitLength)),
            "{:?}: {err:?}",
            String::from_utf8_lossy(bad)
        );
    }
}

fn ping_frame() -> String {
    format!("54:{PING},")
}

#[test]
fn d01_non_numeric_length() {
    let wire = format!("abc:{PING},");
    let (f, err) = feed(&mut server(), &[wire.as_bytes()]);
    assert!(f.is_empty());
    assert!(matches!(err, Some(FrameError::NonDigitLength)));
}

#[test]
fn d02_no_colon_text_is_fatal_at_once() {
    let (f, err) = feed(&mut server(), &[b"hello world", ping_frame().as_bytes()]);
    assert!(f.is_empty());
    assert!(matches!(err, Some(FrameError::NonDigitLength)));
}

#[test]
fn d03_empty_length_is_an_error_not_a_hang() {
    let wire = format!(":{PING},");
    let (f, err) = feed(&mut server(), &[wire.as_bytes()]);
    assert!(f.is_empty());
    assert!(matches!(err, Some(FrameError::EmptyLength)));
}

#[test]
fn d04_negative_length() {
    let (_, err) = feed(&mut server(), &[b"-5:hello,"]);
    assert!(matches!(err, Some(FrameError::NonDigitLength)));
}

#[test]
fn d05_wrong_trailer() {
    let wire = format!("54:{PING};");
    let (f, err) = feed(&mut server(), &[wire.as_bytes()]);
    assert!(f.is_empty());
    assert!(matches!(err, Some(FrameError::MissingComma)));
}

#[test]
fn d06_length_one_too_short() {
    let wire = format!("53:{PING},");
    let (_, err) = feed(&mut server(), &[wire.as_bytes()]);
    assert!(matches!(err, Some(FrameError::MissingComma)));
}

#[test]
fn d07_too_big_before_body() {
    let (_, err) = feed(&mut server(), &[b"1000000:xxxxxxxx"]);
    assert!(matches!(
        err,
        Some(FrameError::TooBig {
            declared: 1_000_000,
            ..
        })
    ));
}

#[test]
fn d08_max_length_swallows_following_frame() {
    let wire = format!("999999:{{{}", ping_frame());
    let (f, err) = feed(&mut server(), &[wire.as_bytes()]);
    assert!(f.is_empty() && err.is_none(), "still waiting for the body");
}

#[test]
fn d09_to_d14_and_d17_d18_frame_fine_but_are_fatal_envelopes() {
    let cases: [(&[u8], &str); 8] = [
        (b"16:this is not json,", "json decode failed: "),
        (b"0:,", "json decode failed: "),
        (
            br#"111:[{"jsonrpc":"2.0","id":"p","method":"ping","params":{}},{"jsonrpc":"2.0","id":"p","method":"ping","params":{}}],"#,
            "not a json object",
        ),
        (b"2:42,", "not a json object"),
        (br#"38:{"id":"p","method":"ping","params":{}},"#, "expected jsonrpc version 2.0"),
        (
            br#"54:{"jsonrpc":"1.0","id":"p","method":"ping","params":{}},"#,
            "expected jsonrpc version 2.0",
        ),
        (b"12:{broken json,", "json decode failed: "),
        (
            b"62:{\"jsonrpc\":\"2.0\",\"id\":\"p\",\"method\":\"ping\",\"params\":{\"x\":\"\xff\xfe\"}},",
            "json decode failed: ",
        ),
    ];
    for (wire, reason) in cases {
        let (f, err) = feed(&mut server(), &[wire]);
        assert!(err.is_none(), "{:?}", String::from_utf8_lossy(wire));
        assert_eq!(f.len(), 1);
        let fatal = classify(&f[0]).expect_err("fatal");
        assert!(fatal.0.starts_with(reason), "{fatal:?} vs {reason}");
        if reason.ends_with(": ") {
            assert!(fatal.0.len() > reason.len(), "decoder message present");
        } else {
            assert_eq!(fatal.0, reason);
        }
    }
}

#[test]
fn d15_leading_zero_accepted_on_read() {
    let wire = format!("054:{PING},");
    let (f, err) = feed(&mut server(), &[wire.as_bytes()]);
    assert!(err.is_none());
    assert_eq!(&f[0][..], PING.as_bytes());
}

#[test]
fn d16_coalesced_and_split_frames() {
    let p2 = r#"{"jsonrpc":"2.0","id":"p2","method":"ping","params":{}}"#;
    let p3 = r#"{"jsonrpc":"2.0","id":"p3","method":"ping","params":{}}"#;
    let first = format!(
        "{}{}",
        ping_frame(),
        String::from_utf8_lossy(&frame(p2.as_bytes()))
    );
    let third = frame(p3.as_bytes());
    let (a, b) = third.split_at(20);
    let (f, err) = feed(&mut server(), &[first.as_bytes(), a, b]);
    assert!(err.is_none());
    let got: Vec<&[u8]> = f.iter().map(|b| &b[..]).collect();
    assert_eq!(got, vec![PING.as_bytes(), p2.as_bytes(), p3.as_bytes()]);
}

#[test]
fn length_prefix_limits() {
    // No ':' within 11 bytes of digits.
    let (_, err) = feed(&mut NetstringCodec::new(usize::MAX), &[b"12345678901"]);
    assert!(matches!(err, Some(FrameError::LengthTooLong)));
    // Ten digits (with leading zeros) are still a valid header.
    let (f, err) = feed(&mut NetstringCodec::new(usize::MAX), &[b"0000000002:ab,"]);
    assert!(err.is_none());
    assert_eq!(&f[0][..], b"ab");
}

#[test]
fn eof_inside_a_frame_is_truncated() {
    let mut codec = server();
    let mut buf = BytesMut::from(&b"10:abc"[..]);
    assert!(codec.decode(&mut buf).expect("ok").is_none());
    assert!(matches!(
        codec.decode_eof(&mut buf),
        Err(FrameError::Truncated { .. })
    ));
    let mut codec = server();
    let mut empty = BytesMut::new();
    assert!(codec.decode_eof(&mut empty).expect("clean eof").is_none());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// C3/C4: any split of a valid stream of several frames decodes to the same frames.
    #[test]
    fn any_split_decodes_the_same(
        payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 1..8),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..20),
    ) {
        let mut wire = BytesMut::new();
        for p in &payloads {
            encode_frame(p, &mut wire);
        }
        let mut points: Vec<usize> = cuts.iter().map(|i| i.index(wire.len() + 1)).collect();
        points.push(0);
        points.push(wire.len());
        points.sort_unstable();
        points.dedup();
        let chunks: Vec<&[u8]> = points.windows(2).map(|w| &wire[w[0]..w[1]]).collect();
        let (frames, err) = feed(&mut NetstringCodec::new(CLIENT_MAX_FRAME), &chunks);
        prop_assert!(err.is_none());
        let got: Vec<Vec<u8>> = frames.iter().map(|f| f.to_vec()).collect();
        prop_assert_eq!(got, payloads);
    }

    /// Arbitrary bytes never panic the decoder.
    #[test]
    fn garbage_never_panics(data in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = feed(&mut server(), &[&data]);
    }
}
