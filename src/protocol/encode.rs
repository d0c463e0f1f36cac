//! Build packets: for the load generator, the tests and the fuzzers' seed corpora.

use super::header::Header;
use super::vars::{encode_var, VarTooLong};

/// A whole packet head (header and vars block) for the given pairs.
pub fn encode_packet(
    modifier1: u8,
    modifier2: u8,
    pairs: &[(&[u8], &[u8])],
) -> Result<Vec<u8>, VarTooLong> {
    let mut block = Vec::new();
    for (key, value) in pairs {
        encode_var(&mut block, key, value)?;
    }
    let datasize = u16::try_from(block.len()).map_err(|_| VarTooLong)?;
    let mut packet = Header {
        modifier1,
        datasize,
        modifier2,
    }
    .to_bytes()
    .to_vec();
    packet.extend_from_slice(&block);
    Ok(packet)
}
