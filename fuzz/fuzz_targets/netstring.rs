//! Netstring decoder: arbitrary bytes fed in arbitrary chunks.
//!
//! Invariants checked:
//! * the decoder never panics;
//! * the outcome (frames, then end/incomplete/error kind) does not depend on how the input
//!   is split into reads, and equals that of a simple reference parser;
//! * every decoded payload re-encodes to the bytes it came from (modulo leading zeros in
//!   the length, which are accepted on read but never written) and decodes back to itself.
//!
//! Not checked: that the read buffer never reserves far more than the bytes received. The
//! decoder currently reserves the whole declared length as soon as the header is read
//! (`src.reserve(body_len + 1 - src.len())`), so a 20-byte `999999:` header reserves ~1 MB;
//! see docs/fuzzing.md.
#![no_main]

use bytes::BytesMut;
use jobcenter_wire::{frame, FrameError, NetstringCodec, CLIENT_MAX_FRAME, SERVER_MAX_FRAME};
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::Decoder;

#[derive(Debug, PartialEq, Eq)]
enum End {
    /// All input consumed at a frame boundary.
    Clean,
    /// Input ended inside a frame (decode_eof reports Truncated).
    Truncated,
    NonDigit,
    Empty,
    TooLong,
    TooBig(u64),
    MissingComma,
}

fn end_of(e: FrameError) -> End {
    match e {
        FrameError::NonDigitLength => End::NonDigit,
        FrameError::EmptyLength => End::Empty,
        FrameError::LengthTooLong => End::TooLong,
        FrameError::TooBig { declared, .. } => End::TooBig(declared),
        FrameError::MissingComma => End::MissingComma,
        FrameError::Truncated { .. } => End::Truncated,
        FrameError::Io(e) => panic!("unexpected i/o error {e}"),
    }
}

/// Outcome of a decode: the frames with the raw bytes each one came from, and how it ended.
type Outcome = (Vec<(Vec<u8>, Vec<u8>)>, End);

/// Decode `input` through the real codec, feeding it in chunks of the given sizes.
fn decode_chunked(input: &[u8], max: usize, sizes: &mut dyn FnMut() -> usize) -> Outcome {
    let mut codec = NetstringCodec::new(max);
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    let mut fed = 0;
    // Bytes of `input` that belong to frames already returned.
    let mut consumed = 0;
    while fed < input.len() {
        let n = sizes().clamp(1, input.len() - fed);
        buf.extend_from_slice(&input[fed..fed + n]);
        fed += n;
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(p)) => {
                    // The raw frame ends right before the bytes still buffered.
                    let end = fed - buf.len();
                    frames.push((p.to_vec(), input[consumed..end].to_vec()));
                    consumed = end;
                }
                Ok(None) => break,
                Err(e) => return (frames, end_of(e)),
            }
        }
    }
    match codec.decode_eof(&mut buf) {
        Ok(Some(p)) => panic!("decode_eof produced a frame decode missed: {p:?}"),
        Ok(None) => (frames, End::Clean),
        Err(e) => (frames, end_of(e)),
    }
}

/// A straightforward reference parser of the same format.
fn reference(input: &[u8], max: usize) -> Outcome {
    let mut frames = Vec::new();
    let mut i = 0;
    loop {
        if i == input.len() {
            return (frames, End::Clean);
        }
        let start = i;
        let mut len: u64 = 0;
        let mut digits = 0;
        loop {
            match input.get(i) {
                None => return (frames, End::Truncated),
                Some(b':') if digits == 0 => return (frames, End::Empty),
                Some(b':') => break,
                Some(d @ b'0'..=b'9') => {
                    if digits == 10 {
                        return (frames, End::TooLong);
                    }
                    len = len * 10 + u64::from(d - b'0');
                    digits += 1;
                }
                Some(_) => return (frames, End::NonDigit),
            }
            i += 1;
        }
        i += 1; // ':'
        if len > max as u64 {
            return (frames, End::TooBig(len));
        }
        let len = len as usize;
        if input.len() - i <= len {
            return (frames, End::Truncated);
        }
        if input[i + len] != b',' {
            return (frames, End::MissingComma);
        }
        frames.push((
            input[i..i + len].to_vec(),
            input[start..i + len + 1].to_vec(),
        ));
        i += len + 1;
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&ctrl, input)) = data.split_first() else {
        return;
    };
    let max = match ctrl & 3 {
        0 => 8,
        1 => 300,
        2 => SERVER_MAX_FRAME,
        _ => CLIENT_MAX_FRAME,
    };
    // Chunk sizes from a small LCG seeded by the control byte: 1..=16 bytes per read, or
    // byte by byte.
    let mut state = u32::from(ctrl >> 2);
    let mut sizes = move || {
        state = state.wrapping_mul(1_103_515_245).wrapping_add(12345);
        if ctrl & 0x80 != 0 {
            1
        } else {
            ((state >> 16) % 16 + 1) as usize
        }
    };
    let whole = decode_chunked(input, max, &mut || usize::MAX);
    let chunked = decode_chunked(input, max, &mut sizes);
    let expected = reference(input, max);
    assert_eq!(
        whole, expected,
        "one-shot decode differs from the reference"
    );
    assert_eq!(
        chunked, expected,
        "chunked decode differs from the reference"
    );

    for (payload, raw) in &expected.0 {
        // Re-encoding gives the raw frame without leading zeros in the length.
        let colon = raw.iter().position(|&b| b == b':').expect("a header");
        let digits = &raw[..colon];
        let first = digits
            .iter()
            .position(|&b| b != b'0')
            .unwrap_or(digits.len() - 1);
        let mut canonical = digits[first..].to_vec();
        canonical.extend_from_slice(&raw[colon..]);
        let encoded = frame(payload);
        assert_eq!(&encoded[..], &canonical[..], "re-encoding differs");
        // And the encoding decodes back to the payload.
        let mut codec = NetstringCodec::new(usize::MAX);
        let mut buf = BytesMut::from(&encoded[..]);
        let back = codec.decode(&mut buf).expect("decodes").expect("a frame");
        assert_eq!(&back[..], &payload[..]);
        assert!(buf.is_empty());
    }
});
