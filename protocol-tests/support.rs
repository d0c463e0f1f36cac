//! Loading vectors from `protocol-tests/vectors/` and driving the decoder every way the server can.

use crate::json::Json;
use rwsgi::protocol::{DecodeError, Limits, Packet, Progress, RequestReader};
use std::path::{Path, PathBuf};

/// Where the vectors live.
pub fn vectors_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("protocol-tests/vectors")
}

/// One vector: the raw bytes and the sidecar.
#[derive(Debug)]
pub struct Vector {
    pub peer: String,
    pub name: String,
    pub bytes: Vec<u8>,
    pub doc: Json,
}

impl Vector {
    pub fn id(&self) -> String {
        format!("{}/{}", self.peer, self.name)
    }

    /// A string member of the sidecar (or of `expected`), as wire bytes.
    pub fn expected(&self) -> &Json {
        self.doc.get("expected").expect("sidecar has no 'expected'")
    }
}

/// Text written by the capture tool back to bytes: every char is one latin-1 byte.
pub fn latin1(s: &str) -> Vec<u8> {
    s.chars()
        .map(|c| u8::try_from(u32::from(c)).expect("sidecar string holds a char above U+00FF"))
        .collect()
}

/// Every vector of one peer directory, sorted by name.
pub fn load_peer(peer: &str) -> Vec<Vector> {
    let dir = vectors_dir().join(peer);
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|f| f.strip_suffix(".json").map(str::to_owned))
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|name| {
            let bytes = std::fs::read(dir.join(format!("{name}.bin")))
                .unwrap_or_else(|e| panic!("{peer}/{name}.bin: {e}"));
            let text = std::fs::read_to_string(dir.join(format!("{name}.json"))).unwrap();
            let doc = Json::parse(&text).unwrap_or_else(|e| panic!("{peer}/{name}.json: {e}"));
            Vector {
                peer: peer.to_owned(),
                name,
                bytes,
                doc,
            }
        })
        .collect()
}

/// The captured peers (every directory but `malformed`).
pub fn captured_peers() -> Vec<String> {
    let mut peers: Vec<String> = std::fs::read_dir(vectors_dir())
        .unwrap()
        .filter_map(|e| {
            let e = e.ok()?;
            e.file_type().ok()?.is_dir().then_some(())?;
            e.file_name().into_string().ok()
        })
        .filter(|p| p != "malformed")
        .collect();
    peers.sort();
    peers
}

/// Every captured vector.
pub fn captured() -> Vec<Vector> {
    captured_peers().iter().flat_map(|p| load_peer(p)).collect()
}

/// The `DecodeError` a sidecar names: `{"Variant": {"field": n, ...}}`.
pub fn error_from_json(v: &Json) -> DecodeError {
    let (variant, fields) = &v.obj().expect("error is an object")[0];
    let f = |name: &str| -> usize {
        let n = fields.get(name).and_then(Json::num);
        usize::try_from(n.unwrap_or_else(|| panic!("{variant} needs {name}"))).unwrap()
    };
    let byte = |name: &str| u8::try_from(f(name)).unwrap();
    match variant.as_str() {
        "BlockTooLarge" => DecodeError::BlockTooLarge {
            size: f("size"),
            max: f("max"),
        },
        "HttpOnUwsgiSocket" => DecodeError::HttpOnUwsgiSocket {
            size: f("size"),
            max: f("max"),
        },
        "EmptyRequest" => DecodeError::EmptyRequest,
        "NullKey" => DecodeError::NullKey {
            offset: f("offset"),
        },
        "Overrun" => DecodeError::Overrun {
            offset: f("offset"),
        },
        "TrailingBytes" => DecodeError::TrailingBytes {
            offset: f("offset"),
        },
        "UnknownModifier" => DecodeError::UnknownModifier {
            modifier1: byte("modifier1"),
            modifier2: byte("modifier2"),
        },
        "BadContentLength" => DecodeError::BadContentLength,
        "BodyTooLarge" => DecodeError::BodyTooLarge {
            length: f("length") as u64,
            max: f("max") as u64,
        },
        "Truncated" => DecodeError::Truncated {
            have: f("have"),
            need: f("need"),
        },
        other => panic!("unknown DecodeError variant {other}"),
    }
}

/// `Limits` from a sidecar's `limits` member (defaults for what it leaves out).
pub fn limits_from_json(v: Option<&Json>) -> Limits {
    let mut limits = Limits::default();
    if let Some(v) = v {
        if let Some(n) = v.get("buffer_size").and_then(Json::num) {
            limits.buffer_size = usize::try_from(n).unwrap();
        }
        if let Some(n) = v.get("limit_post").and_then(Json::num) {
            limits.limit_post = u64::try_from(n).unwrap();
        }
    }
    limits
}

/// How a byte stream ends for the reader: a packet, an error from `poll`, or (the stream ran out)
/// what `eof` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Ready(Packet),
    Error(DecodeError),
    /// The stream ended while the reader still wanted bytes; `eof()`'s answer.
    Eof(Option<DecodeError>),
}

/// Feed `stream` to a fresh reader in the given chunks, polling after each, as the server does.
pub fn feed_chunks<'a>(limits: Limits, chunks: impl IntoIterator<Item = &'a [u8]>) -> Outcome {
    let mut reader = RequestReader::new(limits);
    for chunk in chunks {
        reader.feed(chunk);
        match reader.poll() {
            Ok(Progress::NeedMore) => {}
            Ok(Progress::Ready(p)) => return Outcome::Ready(p),
            Err(e) => return Outcome::Error(e),
        }
    }
    Outcome::Eof(reader.eof())
}

/// The outcome of the whole stream in one read.
pub fn outcome_whole(limits: Limits, stream: &[u8]) -> Outcome {
    feed_chunks(limits, [stream])
}

/// The outcome of the stream one byte per read.
pub fn outcome_bytewise(limits: Limits, stream: &[u8]) -> Outcome {
    feed_chunks(limits, stream.chunks(1))
}
