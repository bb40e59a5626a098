#!/usr/bin/env python3
"""Write seed inputs for the fuzz targets into fuzz/corpus/<target>/ (run from anywhere).

Sources: the recorded wire transcripts (fixtures/wire/*.jsonl), the example workflows
(examples/jcl) and the engine's JCL fixtures. The committed corpora were grown from these
seeds by fuzzing and then minimised with `cargo fuzz cmin`.
"""
import glob
import hashlib
import json
import os

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
CORPUS = os.path.join(ROOT, "fuzz", "corpus")


def put(target, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    name = "seed-" + hashlib.sha1(data).hexdigest()[:16]
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def ns(payload):
    return str(len(payload)).encode() + b":" + payload + b","


payloads = set()
for path in sorted(glob.glob(os.path.join(ROOT, "fixtures", "wire", "*.jsonl"))):
    by_dir = {"C>S": [], "S>C": []}
    for line in open(path, encoding="utf-8"):
        rec = json.loads(line)
        if rec.get("kind") != "frame" or "payload" not in rec:
            continue
        p = rec["payload"].encode()
        payloads.add(p)
        by_dir.setdefault(rec.get("dir"), []).append(p)
    for d, frames in by_dir.items():
        if not frames:
            continue
        stream = b"".join(ns(p) for p in frames[:12])
        put("netstring", bytes([len(stream) % 256]) + stream)
        # rpc_peer: server side gets what clients send, client side what servers send.
        put("rpc_peer", bytes([0x24 if d == "C>S" else 0x05]) + stream)

for p in sorted(payloads)[:200]:
    put("jsonrpc", p)

# Responses to this side's own calls (ids jc0-1.. are rewritten to the peer's prefix).
for body in [
    b'{"jsonrpc":"2.0","id":"jc0-1","result":[4711,null]}',
    b'{"jsonrpc":"2.0","id":"jc0-2","error":{"code":-32001,"message":"x"}}',
    b'{"jsonrpc":"2.0","id":"jc0-1","error":{"code":"1","message":2,"data":[]}}',
    b'{"jsonrpc":"2.0","id":"jc0-1","error":{"code":1,"extra":2}}',
]:
    put("rpc_peer", bytes([0x15]) + ns(body))
    put("jsonrpc", body)
put(
    "rpc_peer",
    bytes([0x20])
    + ns(b'{"jsonrpc":"2.0","method":"ask_back","params":{},"id":7}')
    + ns(b'{"jsonrpc":"2.0","id":"jc0-1","result":"pong!"}'),
)
put("netstring", b"\x00" + b"0003:abc,0:,5:hello,")
put("netstring", b"\x03" + b"999999:")

for pattern in ["examples/jcl/*", "crates/engine/tests/fixtures/jcl/*.*",
                "crates/engine/tests/fixtures/jcl/*/*"]:
    for path in sorted(glob.glob(os.path.join(ROOT, pattern))):
        if path.endswith((".wf", ".ac", ".pr")) and os.path.isfile(path):
            put("jcl", open(path, "rb").read())
