//! Content-Encoding undone before a body is compared (gzip, deflate), so that two upstreams
//! that compress differently, or one that compresses and one that does not, are compared on
//! what they mean. The output is bounded by the compare cap: a small compressed body that
//! would inflate to gigabytes (a zip bomb) stops at the cap and is compared by its hash.

use std::borrow::Cow;
use std::io::{self, BufRead, BufReader, Read};

use flate2::read::{DeflateDecoder, MultiGzDecoder, ZlibDecoder};

use super::BodyHash;

/// Most codings undone in one body (`gzip, gzip` is legal and pointless; more is an attack).
const MAX_LAYERS: usize = 2;

/// A body ready to compare.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload<'a> {
    /// The body's meaning: decoded if it was encoded with a coding trident knows.
    Bytes(Cow<'a, [u8]>),
    /// Decoded, it would be larger than the cap: compare the hash of the encoded bytes.
    TooLarge,
    /// It says `gzip` or `deflate` and does not decode so: no client could read it, whatever
    /// its bytes say as they stand.
    Corrupt,
}

/// Undoes `content_encoding` (the field's value, codings in the order applied) on `body`,
/// producing at most `cap` bytes. Unknown codings leave the bytes as sent.
pub fn decode<'a>(content_encoding: Option<&str>, body: &'a [u8], cap: usize) -> Payload<'a> {
    // No bytes are no bytes in any coding: a HEAD or a 204 says `gzip` of a body it does not
    // send.
    let (Some(codings), false) = (content_encoding, body.is_empty()) else {
        return Payload::Bytes(Cow::Borrowed(body));
    };
    let Some(layers) = layers(codings) else {
        return Payload::Bytes(Cow::Borrowed(body));
    };
    let mut current: Cow<'a, [u8]> = Cow::Borrowed(body);
    // RFC 9110 §8.4: codings are listed in the order they were applied; undo the last first.
    for coding in layers.iter().rev() {
        let decoded =
            if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
                inflate(MultiGzDecoder::new(&current[..]), cap)
            } else if coding.eq_ignore_ascii_case("deflate") {
                // RFC 9110 §8.4.1.2: "deflate" is zlib-wrapped; some servers send it raw.
                inflate(ZlibDecoder::new(&current[..]), cap)
                    .or_else(|_| inflate(DeflateDecoder::new(&current[..]), cap))
            } else {
                // br, zstd, compress...: compared as sent.
                return Payload::Bytes(Cow::Borrowed(body));
            };
        match decoded {
            Ok(Some(bytes)) => current = Cow::Owned(bytes),
            Ok(None) => return Payload::TooLarge,
            Err(_) => return Payload::Corrupt,
        }
    }
    Payload::Bytes(current)
}

/// The codings of a `Content-Encoding` value, in the order applied, `identity` left out;
/// `None` for none, or for more than `MAX_LAYERS`.
fn layers(codings: &str) -> Option<Vec<&str>> {
    let layers: Vec<&str> = codings
        .split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty() && !c.eq_ignore_ascii_case("identity"))
        .collect();
    (!layers.is_empty() && layers.len() <= MAX_LAYERS).then_some(layers)
}

/// The length and hash of what a body decodes to, for one that decodes past the cap: streamed
/// through the hash, never kept, through each of its codings (at most `MAX_LAYERS`, undone
/// last first, as `decode` does: `gzip, gzip` read as another body past the cap; hunt 84).
/// `None` past `limit` decoded bytes (a zip bomb), for a coding it does not know, or for data
/// that does not decode.
pub fn decoded_hash(content_encoding: Option<&str>, body: &[u8], limit: u64) -> Option<(u64, u64)> {
    let layers = layers(content_encoding?)?;
    let mut decoder: Box<dyn BufRead + '_> = Box::new(body);
    for coding in layers.iter().rev() {
        decoder = if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
            Box::new(BufReader::new(MultiGzDecoder::new(decoder)))
        } else if coding.eq_ignore_ascii_case("deflate") {
            // zlib-wrapped (RFC 1950: its two-byte header is a multiple of 31), else raw.
            let head = decoder.fill_buf().ok()?;
            let zlib = head.len() >= 2
                && head[0] & 0x0f == 8
                && (u16::from(head[0]) << 8 | u16::from(head[1])) % 31 == 0;
            if zlib {
                Box::new(BufReader::new(ZlibDecoder::new(decoder)))
            } else {
                Box::new(BufReader::new(DeflateDecoder::new(decoder)))
            }
        } else {
            return None;
        };
    }
    let (mut hash, mut len) = (BodyHash::default(), 0u64);
    let mut buf = [0u8; 16 * 1024];
    loop {
        match decoder.read(&mut buf) {
            Ok(0) => return Some((len, hash.finish())),
            Ok(n) => {
                len += n as u64;
                if len > limit {
                    return None;
                }
                hash.update(&buf[..n]);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
}

/// Reads the decoder to its end, or `None` as soon as it has produced more than `cap` bytes.
fn inflate(decoder: impl Read, cap: usize) -> io::Result<Option<Vec<u8>>> {
    let mut out = Vec::new();
    let limit = u64::try_from(cap).unwrap_or(u64::MAX).saturating_add(1);
    decoder.take(limit).read_to_end(&mut out)?;
    Ok((out.len() <= cap).then_some(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::{DeflateEncoder, GzEncoder, ZlibEncoder};
    use flate2::Compression;
    use std::io::Write;

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut enc = GzEncoder::new(Vec::new(), Compression::default());
        enc.write_all(bytes).unwrap();
        enc.finish().unwrap()
    }

    fn zlib(bytes: &[u8]) -> Vec<u8> {
        let mut enc = ZlibEncoder::new(Vec::new(), Compression::default());
        enc.write_all(bytes).unwrap();
        enc.finish().unwrap()
    }

    fn raw_deflate(bytes: &[u8]) -> Vec<u8> {
        let mut enc = DeflateEncoder::new(Vec::new(), Compression::default());
        enc.write_all(bytes).unwrap();
        enc.finish().unwrap()
    }

    fn bytes(payload: Payload<'_>) -> Vec<u8> {
        match payload {
            Payload::Bytes(b) => b.into_owned(),
            other => panic!("not decoded: {other:?}"),
        }
    }

    #[test]
    fn codings_are_undone() {
        let text = br#"{"user":{"name":"ada"}}"#;
        let rows: Vec<(Option<&str>, Vec<u8>)> = vec![
            (None, text.to_vec()),
            (Some("identity"), text.to_vec()),
            (Some("gzip"), gzip(text)),
            (Some("GZIP"), gzip(text)),
            (Some("x-gzip"), gzip(text)),
            (Some("deflate"), zlib(text)),
            (Some("deflate"), raw_deflate(text)),
            (Some("deflate, gzip"), gzip(&zlib(text))),
            (Some("gzip, identity"), gzip(text)),
        ];
        for (coding, body) in rows {
            assert_eq!(bytes(decode(coding, &body, 1024)), text, "{coding:?}");
        }
    }

    /// Past the cap, a body's content is hashed through the same codings `decode` undoes:
    /// `gzip, gzip` read as another body there (hunt 84).
    #[test]
    fn decoded_hashes_undo_the_same_codings() {
        let text: Vec<u8> = (0..20_000u32).flat_map(|n| n.to_le_bytes()).collect();
        let whole = Some((text.len() as u64, BodyHash::of(&text)));
        let rows: Vec<(&str, Vec<u8>)> = vec![
            ("gzip", gzip(&text)),
            ("x-gzip", gzip(&text)),
            ("deflate", zlib(&text)),
            ("deflate", raw_deflate(&text)),
            ("gzip, gzip", gzip(&gzip(&text))),
            ("deflate, gzip", gzip(&zlib(&text))),
            ("identity, gzip, identity", gzip(&text)),
        ];
        for (coding, body) in rows {
            assert_eq!(
                decoded_hash(Some(coding), &body, 1 << 20),
                whole,
                "{coding}"
            );
        }
        for (coding, body) in [
            ("br", text.clone()),
            ("gzip, gzip, gzip", gzip(&gzip(&gzip(&text)))),
            ("gzip", b"not gzip".to_vec()),
        ] {
            assert_eq!(decoded_hash(Some(coding), &body, 1 << 20), None, "{coding}");
        }
        assert_eq!(
            decoded_hash(Some("gzip"), &gzip(&text), 1000),
            None,
            "the limit"
        );
    }

    #[test]
    fn unknown_codings_compare_as_sent() {
        let rows: Vec<(&str, Vec<u8>)> = vec![
            ("br", b"\x0b\x02\x80hello".to_vec()),
            ("gzip, gzip, gzip", gzip(&gzip(&gzip(b"x")))),
        ];
        for (coding, body) in rows {
            assert_eq!(bytes(decode(Some(coding), &body, 1024)), body, "{coding}");
        }
    }

    #[test]
    fn a_known_coding_that_does_not_decode_is_corrupt() {
        let rows: Vec<(&str, Vec<u8>)> = vec![
            ("gzip", b"not gzip at all".to_vec()),
            ("deflate", b"\xff\xff\xff".to_vec()),
            ("gzip", gzip(b"cut short")[..12].to_vec()),
            ("deflate, gzip", gzip(b"gzip alone")),
        ];
        for (coding, body) in rows {
            assert_eq!(
                decode(Some(coding), &body, 1024),
                Payload::Corrupt,
                "{coding}"
            );
        }
        // An empty body is empty, whatever it says (a HEAD's).
        assert_eq!(bytes(decode(Some("gzip"), b"", 1024)), b"");
    }

    #[test]
    fn a_zip_bomb_stops_at_the_cap() {
        // 64 MiB of zeros compress to about 64 KiB; decoding must stop after the cap.
        let mut enc = GzEncoder::new(Vec::new(), Compression::best());
        let zeros = vec![0u8; 1024 * 1024];
        for _ in 0..64 {
            enc.write_all(&zeros).unwrap();
        }
        let bomb = enc.finish().unwrap();
        assert!(bomb.len() < 256 * 1024, "{}", bomb.len());
        assert_eq!(decode(Some("gzip"), &bomb, 1024 * 1024), Payload::TooLarge);
        // Exactly at the cap is still whole.
        let exact = gzip(&[7u8; 4096]);
        assert_eq!(bytes(decode(Some("gzip"), &exact, 4096)), vec![7u8; 4096]);
        assert_eq!(decode(Some("gzip"), &exact, 4095), Payload::TooLarge);
    }
}
