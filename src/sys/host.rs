//! Memory shared across `fork`, and what the host reports: page size, CPUs, host name, local
//! time.

use std::io;
use std::time::SystemTime;

/// `len` values of `T` in a shared anonymous mapping: made before a fork, the parent and every
/// child see each other's writes. `T` must be `Sync` (its fields are atomics: every process
/// writes through `&T`) and have nothing to drop (the mapping is unmapped in every process).
pub struct SharedSlice<T> {
    base: *mut T,
    len: usize,
    bytes: usize,
}

// SAFETY: the mapping is owned by this value and holds `Sync` values only reached through `&T`.
unsafe impl<T: Sync> Send for SharedSlice<T> {}
// SAFETY: as above: shared access is `&T`, which `T: Sync` allows from any thread.
unsafe impl<T: Sync> Sync for SharedSlice<T> {}

impl<T: Default + Sync> SharedSlice<T> {
    /// Map room for `len` values (at least one) and set each to `T::default()`.
    pub fn new(len: usize) -> io::Result<SharedSlice<T>> {
        assert!(
            !std::mem::needs_drop::<T>(),
            "a shared mapping is unmapped in every process: its values must not need dropping"
        );
        let len = len.max(1);
        let bytes = std::mem::size_of::<T>()
            .checked_mul(len)
            .ok_or_else(|| io::Error::other("shared mapping too large"))?;
        // SAFETY: a new anonymous shared mapping; no existing memory is touched.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                bytes.max(1),
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let base = base.cast::<T>();
        // The mapping is page-aligned, which satisfies any alignment a plain struct has.
        debug_assert!(base.is_aligned());
        for i in 0..len {
            // SAFETY: `i < len` stays inside the mapping; writing does not read the old bytes.
            unsafe { base.add(i).write(T::default()) };
        }
        Ok(SharedSlice { base, len, bytes })
    }
}

impl<T> std::ops::Deref for SharedSlice<T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        // SAFETY: `len` initialised values at an aligned base, alive as long as `self`.
        unsafe { std::slice::from_raw_parts(self.base, self.len) }
    }
}

impl<T> Drop for SharedSlice<T> {
    fn drop(&mut self) {
        // SAFETY: unmapping the region mapped in `new`; no reference outlives `self`, and the
        // values need no drop (checked in `new`).
        unsafe { libc::munmap(self.base.cast(), self.bytes.max(1)) };
    }
}

/// The memory page size in bytes.
pub fn page_size() -> Option<u64> {
    // SAFETY: sysconf has no preconditions.
    u64::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).ok()
}

/// CPUs online (at least 1).
pub fn online_cpus() -> u64 {
    // SAFETY: sysconf has no preconditions; -1 (unknown) is clamped.
    u64::try_from(unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) })
        .unwrap_or(1)
        .max(1)
}

/// The host name (`gethostname`), empty when it cannot be read.
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most `buf.len()` bytes into `buf`.
    let r = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if r != 0 {
        return String::new();
    }
    let len = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..len]).into_owned()
}

fn epoch_secs(t: SystemTime) -> libc::time_t {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    libc::time_t::try_from(secs).unwrap_or(0)
}

/// `ctime(3)` without the newline: `Fri Nov 27 10:29:38 2026`.
pub fn ctime(t: SystemTime) -> String {
    let secs = epoch_secs(t);
    let mut buf = [0 as libc::c_char; 32];
    // SAFETY: ctime_r writes at most 26 bytes into the 32-byte buffer.
    let p = unsafe { libc::ctime_r(&secs, buf.as_mut_ptr()) };
    if p.is_null() {
        return String::new();
    }
    // SAFETY: ctime_r NUL-terminated the buffer.
    let s = unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) };
    s.to_string_lossy().trim_end().to_string()
}

/// The broken-down local time (`localtime_r`) of `t`, with its zone offset.
pub fn local_time(t: SystemTime) -> Option<libc::tm> {
    let secs = epoch_secs(t);
    // SAFETY: an all-zero `tm` is a valid value (its zone pointer is null).
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are valid for the call; localtime_r is thread-safe.
    let r = unsafe { libc::localtime_r(&secs, &mut tm) };
    (!r.is_null()).then_some(tm)
}

/// `t` in local time as `strftime(3)` formats it; empty when the result does not fit 256 bytes
/// or the format holds a NUL.
pub fn strftime(format: &str, t: SystemTime) -> String {
    let (Ok(format), Some(tm)) = (std::ffi::CString::new(format), local_time(t)) else {
        return String::new();
    };
    let mut buf = [0u8; 256];
    // SAFETY: strftime writes at most `buf.len()` bytes into `buf` and reads the NUL-terminated
    // format and a valid `tm`.
    let len = unsafe { libc::strftime(buf.as_mut_ptr().cast(), buf.len(), format.as_ptr(), &tm) };
    String::from_utf8_lossy(&buf[..len]).into_owned()
}

/// An all-zero `tm` (for building one field by field).
pub fn zero_tm() -> libc::tm {
    // SAFETY: an all-zero `tm` is a valid value (its zone pointer is null).
    unsafe { std::mem::zeroed() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    #[test]
    fn shared_slice_values_start_at_default() {
        let slice = SharedSlice::<AtomicU64>::new(3).unwrap();
        assert_eq!(slice.len(), 3);
        assert!(slice.iter().all(|v| v.load(Ordering::SeqCst) == 0));
        slice[2].store(42, Ordering::SeqCst);
        assert_eq!(slice[2].load(Ordering::SeqCst), 42);
    }

    #[test]
    fn ctime_has_the_c_layout() {
        assert_eq!(ctime(SystemTime::now()).len(), 24);
    }
}
