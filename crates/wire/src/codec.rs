//! Netstring framing (`LEN:PAYLOAD,`) as a `tokio_util` codec, with strict, typed framing errors.

use bytes::{BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

/// Largest payload the reference server accepts (a declared length of exactly this is allowed).
pub const SERVER_MAX_FRAME: usize = 999_999;

/// Default payload limit for clients (server → client frames such as `job_done` are unlimited
/// in the reference, so clients use a generous limit).
pub const CLIENT_MAX_FRAME: usize = 16 * 1024 * 1024;

/// The most the decoder reserves ahead of the bytes of a frame that have arrived.
pub const RESERVE_STEP: usize = 16 * 1024;

/// Maximum number of digits accepted in a length prefix.
pub const MAX_LENGTH_DIGITS: usize = 10;

/// A fatal framing error. After any of these the stream cannot be resynchronised and the
/// connection must be closed without a JSON-RPC answer.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// A byte other than an ASCII digit appeared in the length prefix.
    #[error("non-digit character in netstring length")]
    NonDigitLength,
    /// The frame started with `:` (empty length).
    #[error("empty netstring length")]
    EmptyLength,
    /// More than [`MAX_LENGTH_DIGITS`] digits, or no `:` within the first 11 bytes.
    #[error("netstring length prefix too long")]
    LengthTooLong,
    /// The declared length exceeds the configured maximum (checked on the header).
    #[error("netstring too big: {declared} > {max}")]
    TooBig {
        /// The declared payload length.
        declared: u64,
        /// The configured maximum.
        max: usize,
    },
    /// The byte after the payload was not `,`.
    #[error("no trailing , in chunk")]
    MissingComma,
    /// The stream ended in the middle of a frame.
    #[error("stream ended inside a netstring ({buffered} bytes buffered)")]
    Truncated {
        /// Bytes buffered when the stream ended.
        buffered: usize,
    },
    /// An I/O error from the underlying stream.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

/// Netstring codec. Decodes frames into payload [`Bytes`] (zero-copy), encodes payloads into
/// frames. Leading zeros in the length are accepted on read but never written.
#[derive(Debug, Clone)]
pub struct NetstringCodec {
    max_frame: usize,
    /// Payload length of the frame whose header has been consumed, if any.
    body_len: Option<usize>,
}

impl NetstringCodec {
    /// A codec that rejects frames whose declared payload length is greater than `max_frame`.
    pub fn new(max_frame: usize) -> Self {
        Self {
            max_frame,
            body_len: None,
        }
    }

    /// The configured maximum payload length.
    pub fn max_frame(&self) -> usize {
        self.max_frame
    }
}

impl Default for NetstringCodec {
    /// A codec with the client limit, [`CLIENT_MAX_FRAME`].
    fn default() -> Self {
        Self::new(CLIENT_MAX_FRAME)
    }
}

/// Outcome of scanning a (possibly partial) header.
enum Header {
    /// Need more bytes.
    Incomplete,
    /// Declared length and the header size including `:`.
    Complete { len: u64, header: usize },
}

fn parse_header(buf: &[u8]) -> Result<Header, FrameError> {
    let mut len: u64 = 0;
    for (i, &b) in buf.iter().enumerate() {
        match b {
            b':' if i == 0 => return Err(FrameError::EmptyLength),
            b':' => {
                return Ok(Header::Complete { len, header: i + 1 });
            }
            b'0'..=b'9' => {
                if i >= MAX_LENGTH_DIGITS {
                    return Err(FrameError::LengthTooLong);
                }
                // At most 10 digits: cannot overflow u64.
                len = len * 10 + u64::from(b - b'0');
            }
            _ => return Err(FrameError::NonDigitLength),
        }
    }
    Ok(Header::Incomplete)
}

impl Decoder for NetstringCodec {
    type Item = Bytes;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        let body_len = match self.body_len {
            Some(n) => n,
            None => match parse_header(src)? {
                Header::Incomplete => return Ok(None),
                Header::Complete { len, header } => {
                    if len > self.max_frame as u64 {
                        return Err(FrameError::TooBig {
                            declared: len,
                            max: self.max_frame,
                        });
                    }
                    // len <= max_frame, which is a usize.
                    let len = len as usize;
                    let _ = src.split_to(header);
                    self.body_len = Some(len);
                    len
                }
            },
        };
        if src.len() <= body_len {
            // Room for what is still missing, but never more than RESERVE_STEP at a time:
            // memory follows the bytes that arrive, not the length a peer declares.
            src.reserve((body_len + 1 - src.len()).min(RESERVE_STEP));
            return Ok(None);
        }
        if src[body_len] != b',' {
            return Err(FrameError::MissingComma);
        }
        let payload = src.split_to(body_len).freeze();
        let _ = src.split_to(1);
        self.body_len = None;
        Ok(Some(payload))
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        match self.decode(buf)? {
            Some(frame) => Ok(Some(frame)),
            None if buf.is_empty() && self.body_len.is_none() => Ok(None),
            None => Err(FrameError::Truncated {
                buffered: buf.len(),
            }),
        }
    }
}

/// Append the netstring frame `LEN:payload,` to `dst` (no leading zeros, no whitespace).
pub fn encode_frame(payload: &[u8], dst: &mut BytesMut) {
    let mut digits = [0u8; 20];
    let mut n = payload.len();
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    dst.reserve(digits.len() - i + payload.len() + 2);
    dst.put_slice(&digits[i..]);
    dst.put_u8(b':');
    dst.put_slice(payload);
    dst.put_u8(b',');
}

/// Return the netstring frame for `payload` as a new buffer.
pub fn frame(payload: &[u8]) -> Bytes {
    let mut dst = BytesMut::with_capacity(payload.len() + 12);
    encode_frame(payload, &mut dst);
    dst.freeze()
}

impl Encoder<Bytes> for NetstringCodec {
    type Error = FrameError;

    fn encode(&mut self, item: Bytes, dst: &mut BytesMut) -> Result<(), FrameError> {
        encode_frame(&item, dst);
        Ok(())
    }
}

impl Encoder<&[u8]> for NetstringCodec {
    type Error = FrameError;

    fn encode(&mut self, item: &[u8], dst: &mut BytesMut) -> Result<(), FrameError> {
        encode_frame(item, dst);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(codec: &mut NetstringCodec, input: &[u8]) -> Result<Vec<Bytes>, FrameError> {
        let mut buf = BytesMut::from(input);
        let mut out = Vec::new();
        while let Some(f) = codec.decode(&mut buf)? {
            out.push(f);
        }
        Ok(out)
    }

    #[test]
    fn encode_zero_and_multi_digit() {
        assert_eq!(&frame(b"")[..], b"0:,");
        assert_eq!(&frame(b"abc")[..], b"3:abc,");
        let big = vec![b'x'; 1234];
        let f = frame(&big);
        assert!(f.starts_with(b"1234:x"));
        assert_eq!(f.len(), 1234 + 6);
    }

    #[test]
    fn a_declared_length_reserves_nothing_beyond_the_step() {
        let mut c = NetstringCodec::new(SERVER_MAX_FRAME);
        let mut buf = BytesMut::new();
        buf.extend_from_slice(b"999999:{");
        assert!(c.decode(&mut buf).unwrap().is_none());
        assert!(
            buf.capacity() <= RESERVE_STEP + 64,
            "reserved {} bytes for a 999999-byte header",
            buf.capacity()
        );
        // The frame still decodes when its bytes arrive in pieces.
        let body = vec![b'x'; 999_998];
        for chunk in body.chunks(100_000) {
            buf.extend_from_slice(chunk);
            assert!(c.decode(&mut buf).unwrap().is_none());
        }
        buf.extend_from_slice(b",");
        let f = c.decode(&mut buf).unwrap().unwrap();
        assert_eq!(f.len(), 999_999);
    }

    #[test]
    fn header_limits() {
        let mut c = NetstringCodec::new(usize::MAX);
        // 10 digits are fine (incomplete body), 11 are not.
        assert!(decode_all(&mut c, b"0000000001:").unwrap().is_empty());
        let mut c = NetstringCodec::new(usize::MAX);
        assert!(matches!(
            decode_all(&mut c, b"00000000001"),
            Err(FrameError::LengthTooLong)
        ));
    }
}
