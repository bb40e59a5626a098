//! Every frame captured from the reference stack re-frames byte-exactly and classifies.

use bytes::BytesMut;
use jobcenter_wire::{classify, encode_frame, Incoming, NetstringCodec, SERVER_MAX_FRAME};
use serde_json::Value;
use std::path::PathBuf;
use tokio_util::codec::Decoder;

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/wire")
}

/// (file name, payload, declared length) of every clean frame in the fixtures.
fn fixture_frames() -> Vec<(String, String, u64)> {
    let mut out = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(fixture_dir())
        .expect("fixtures/wire exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 20,
        "expected the transcript set, got {files:?}"
    );
    for path in files {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let text = std::fs::read_to_string(&path).expect("readable fixture");
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let ev: Value = serde_json::from_str(line).expect("fixture line is JSON");
            if ev["kind"] != "frame" || ev.get("raw").is_some() {
                continue;
            }
            let payload = ev["payload"].as_str().expect("payload string").to_string();
            let len = ev["len"].as_u64().expect("len");
            out.push((name.clone(), payload, len));
        }
    }
    out
}

#[test]
fn every_fixture_frame_roundtrips_byte_exactly() {
    let frames = fixture_frames();
    assert!(frames.len() > 500, "only {} frames found", frames.len());
    let mut codec = NetstringCodec::new(SERVER_MAX_FRAME);
    let mut stream = BytesMut::new();
    for (name, payload, len) in &frames {
        let mut one = BytesMut::new();
        encode_frame(payload.as_bytes(), &mut one);
        let expected = format!("{len}:{payload},");
        assert_eq!(&one[..], expected.as_bytes(), "{name}: re-encoding differs");
        let mut buf = one.clone();
        let decoded = codec.decode(&mut buf).expect("decodes").expect("complete");
        assert_eq!(&decoded[..], payload.as_bytes(), "{name}");
        assert!(buf.is_empty());
        stream.extend_from_slice(&one);
    }
    // The whole capture as one byte stream decodes to the same frames, in order.
    let mut n = 0;
    while let Some(f) = codec.decode(&mut stream).expect("stream decodes") {
        assert_eq!(&f[..], frames[n].1.as_bytes());
        n += 1;
    }
    assert_eq!(n, frames.len());
}

#[test]
fn every_fixture_frame_classifies() {
    // Files in which the captures deliberately contain invalid envelopes.
    let bad_on_purpose = [
        "c03_unknown_method_and_bad_requests.jsonl",
        "d_framing_errors.jsonl",
    ];
    let mut fatal = Vec::new();
    let (mut requests, mut responses) = (0, 0);
    for (name, payload, _) in fixture_frames() {
        match classify(payload.as_bytes()) {
            Ok(Incoming::Request { .. }) => requests += 1,
            Ok(Incoming::Response { .. }) => responses += 1,
            Ok(Incoming::InvalidResponse { reason, .. }) => {
                panic!("{name}: invalid response in fixture: {reason}: {payload}")
            }
            Err(e) => {
                assert!(
                    bad_on_purpose.contains(&name.as_str()),
                    "{name}: unexpected fatal {e}: {payload}"
                );
                fatal.push(e.0);
            }
        }
    }
    assert!(requests > 200 && responses > 100, "{requests} {responses}");
    // c03: object id and neither-method-nor-result; d: not json, empty, batch, scalar,
    // missing jsonrpc, jsonrpc 1.0, broken json.
    for reason in [
        "id is not a string or number",
        "invalid jsonnrpc object",
        "not a json object",
        "expected jsonrpc version 2.0",
    ] {
        assert!(
            fatal.iter().any(|f| f == reason),
            "{reason} missing in {fatal:?}"
        );
    }
    assert!(fatal.iter().any(|f| f.starts_with("json decode failed: ")));
}
