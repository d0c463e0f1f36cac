//! Byte-slice equality for the short keys and values the builder compares per request.

/// `a == b`, inline: `==` on slices calls libc's `memcmp`, which showed up at 6% of a hello
/// request. Up to 16 bytes it is two (possibly overlapping) loads per side; longer slices go eight
/// bytes at a time.
#[inline]
pub(super) fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let n = a.len();
    let u64_at = |s: &[u8], i: usize| u64::from_le_bytes(s[i..i + 8].try_into().unwrap_or([0; 8]));
    let u32_at = |s: &[u8], i: usize| u32::from_le_bytes(s[i..i + 4].try_into().unwrap_or([0; 4]));
    match n {
        0 => true,
        1..=3 => a[0] == b[0] && a[n / 2] == b[n / 2] && a[n - 1] == b[n - 1],
        4..=7 => u32_at(a, 0) == u32_at(b, 0) && u32_at(a, n - 4) == u32_at(b, n - 4),
        8..=16 => u64_at(a, 0) == u64_at(b, 0) && u64_at(a, n - 8) == u64_at(b, n - 8),
        _ => {
            let heads_equal = a
                .chunks_exact(8)
                .zip(b.chunks_exact(8))
                .all(|(x, y)| u64_at(x, 0) == u64_at(y, 0));
            heads_equal && u64_at(a, n - 8) == u64_at(b, n - 8)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_bytes_agrees_with_eq() {
        let text = b"HTTP_X_FORWARDED_PROTO=https; a longer value than sixteen bytes";
        for len in 0..text.len() {
            let a = &text[..len];
            assert!(same_bytes(a, a));
            for at in 0..len {
                let mut b = a.to_vec();
                b[at] ^= 0x20;
                assert!(!same_bytes(a, &b), "{len} bytes, differing at {at}");
            }
            assert!(!same_bytes(a, &text[..len + 1]));
        }
    }
}
