//! Protocol conformance: vectors captured from real peers, malformed vectors, and raw-bytes tests
//! against the real binary.
