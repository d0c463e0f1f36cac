use super::*;
use crate::sys::fd::Socket;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;

/// A connection (our end of a socket pair) and the client's end, blocking with a timeout.
fn pair() -> (Conn, UnixStream) {
    let (ours, theirs) = UnixStream::pair().expect("socketpair");
    ours.set_nonblocking(true).expect("non-blocking");
    theirs
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("read timeout");
    (Conn::new(Socket::from_owned(OwnedFd::from(ours))), theirs)
}

/// A file of `len` bytes that differ from their neighbours, removed when dropped.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str, len: usize) -> (TempFile, Vec<u8>) {
        let path =
            std::env::temp_dir().join(format!("rwsgi-transfer-{}-{name}", std::process::id()));
        let bytes: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        std::fs::File::create(&path)
            .and_then(|mut f| f.write_all(&bytes))
            .expect("write the test file");
        (TempFile(path), bytes)
    }

    fn open(&self) -> File {
        File::open(&self.0).expect("open the test file")
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn transfer(conn: Conn, file: File, range: (u64, u64)) -> Transfer {
    Transfer::new(
        conn,
        file,
        b"HEAD\r\n\r\n".to_vec(),
        range,
        Duration::from_secs(4),
        None,
    )
}

fn read_exactly(peer: &mut UnixStream, n: usize) -> Vec<u8> {
    let mut got = vec![0; n];
    peer.read_exact(&mut got).expect("read from the peer");
    got
}

#[test]
fn a_small_file_goes_out_in_one_round() {
    let (file, bytes) = TempFile::new("small", 1000);
    let (conn, mut peer) = pair();
    let mut t = transfer(conn, file.open(), (0, 1000));
    assert!(matches!(t.pump(u64::MAX), Pump::Done));
    assert_eq!(t.sent(), 1000);
    assert_eq!(read_exactly(&mut peer, 8), b"HEAD\r\n\r\n");
    assert_eq!(read_exactly(&mut peer, 1000), bytes);
}

#[test]
fn a_slow_reader_blocks_the_round_and_gets_every_byte_in_order() {
    let len = 4 << 20;
    let (file, bytes) = TempFile::new("slow", len);
    let (conn, mut peer) = pair();
    let mut t = transfer(conn, file.open(), (0, len as u64));
    assert!(matches!(t.pump(u64::MAX), Pump::Blocked));
    assert!(t.sent() < len as u64, "a socket pair does not buffer 4 MiB");
    let mut got = read_exactly(&mut peer, 8);
    assert_eq!(got, b"HEAD\r\n\r\n");
    got.clear();
    let mut rounds = 0;
    loop {
        rounds += 1;
        assert!(rounds < 100_000, "the transfer does not end");
        let mut chunk = [0u8; 64 * 1024];
        let n = peer.read(&mut chunk).expect("read from the peer");
        got.extend_from_slice(&chunk[..n]);
        match t.pump(u64::MAX) {
            Pump::Blocked => {}
            Pump::Done => break,
            other => panic!("unexpected end of a round: {other:?}"),
        }
    }
    got.extend(read_exactly(&mut peer, len - got.len()));
    assert!(got == bytes, "the bytes differ from the file");
    assert!(rounds > 1);
}

#[test]
fn a_round_ends_at_its_budget_and_the_next_goes_on() {
    let (file, bytes) = TempFile::new("turn", 10_000);
    let (conn, mut peer) = pair();
    let mut t = transfer(conn, file.open(), (0, 10_000));
    assert!(matches!(t.pump(1000), Pump::Turn));
    assert_eq!(t.sent(), 1000);
    assert!(matches!(t.pump(u64::MAX), Pump::Done));
    read_exactly(&mut peer, 8);
    assert_eq!(read_exactly(&mut peer, 10_000), bytes);
}

#[test]
fn a_range_is_sent_from_its_offset() {
    let (file, bytes) = TempFile::new("range", 1000);
    let (conn, mut peer) = pair();
    let mut t = transfer(conn, file.open(), (100, 50));
    assert!(matches!(t.pump(u64::MAX), Pump::Done));
    read_exactly(&mut peer, 8);
    assert_eq!(read_exactly(&mut peer, 50), &bytes[100..150]);
}

#[test]
fn a_file_shorter_than_promised_is_truncated() {
    let (file, _) = TempFile::new("short", 100);
    let (conn, _peer) = pair();
    let mut t = transfer(conn, file.open(), (0, 200));
    assert!(matches!(t.pump(u64::MAX), Pump::Truncated));
    assert_eq!(t.sent(), 100);
    assert!(t.end(&Pump::Truncated, "test").is_none());
}

#[test]
fn a_client_that_went_away_fails_the_round() {
    let (file, _) = TempFile::new("gone", 100);
    let (conn, peer) = pair();
    drop(peer);
    let mut t = transfer(conn, file.open(), (0, 100));
    assert!(matches!(t.pump(u64::MAX), Pump::Failed(_)));
}

#[test]
fn a_transfer_stalls_once_its_timeout_passed_without_progress() {
    let (file, _) = TempFile::new("stall", 10);
    let (conn, _peer) = pair();
    let t = transfer(conn, file.open(), (0, 10));
    let now = Instant::now();
    assert!(!t.stalled(now));
    assert!(!t.stalled(now + Duration::from_secs(3)));
    assert!(t.stalled(now + Duration::from_secs(5)));
}

#[test]
fn the_longest_stalled_are_cut_first_and_recent_ones_spared() {
    let t0 = Instant::now();
    let at = |s| t0 + Duration::from_secs(s);
    let since = vec![(at(5), 1), (at(1), 2), (at(9), 3), (at(3), 4)];
    assert_eq!(longest_stalled(since.clone(), 2, Some(at(6))), vec![2, 4]);
    assert_eq!(
        longest_stalled(since.clone(), 9, Some(at(6))),
        vec![2, 4, 1]
    );
    assert_eq!(
        longest_stalled(since.clone(), 9, Some(at(0))),
        Vec::<usize>::new()
    );
    assert_eq!(longest_stalled(since, 9, None), Vec::<usize>::new());
}

#[test]
fn transfer_tokens_are_apart_from_connection_and_signal_tokens() {
    assert_eq!(Transfers::key(Token(TOKEN_BASE + 7)), Some(7));
    assert_eq!(Transfers::key(Token(7)), None);
    assert_eq!(Transfers::key(Token(usize::MAX)), None);
    assert_eq!(Transfers::key(Token(usize::MAX - 8)), None);
}

#[test]
fn finishing_on_the_thread_waits_for_a_reader_and_sends_every_byte() {
    let len = 4 << 20;
    let (file, bytes) = TempFile::new("here", len);
    let (conn, mut peer) = pair();
    let reader = std::thread::spawn(move || {
        let mut got = Vec::with_capacity(len + 8);
        peer.read_to_end(&mut got).expect("read to the end");
        got
    });
    let t = transfer(conn, file.open(), (0, len as u64));
    assert!(t.finish_here().is_none(), "no keep-alive was asked for");
    let got = reader.join().expect("the reader thread");
    assert_eq!(&got[..8], b"HEAD\r\n\r\n");
    assert!(got[8..] == bytes[..], "the bytes differ from the file");
}

#[test]
fn finishing_on_the_thread_gives_up_on_a_reader_that_takes_nothing() {
    let len = 4 << 20;
    let (file, _) = TempFile::new("stalled", len);
    let (conn, _peer) = pair();
    let mut t = transfer(conn, file.open(), (0, len as u64));
    t.timeout = Duration::from_millis(50);
    let started = Instant::now();
    assert!(t.finish_here().is_none());
    // It waited for the reader (poll(2) counts whole milliseconds, so a hair under 50 ms).
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(40), "gave up after {took:?}");
}
