//! Protocol conformance: vectors captured from real peers, malformed vectors, property tests,
//! fuzz-crash regressions, and raw-bytes tests against the real binary.
//!
//! Vectors live in `protocol-tests/vectors/<peer>/<name>.{bin,json}`; see
//! `protocol-tests/README.md` for how they are captured and regenerated.

mod captured;
mod http;
mod json;
mod live;
mod malformed;
mod properties;
mod regressions;
mod support;
