//! Tests of the worker pool: every chunk run once with each slot on one thread at a time, parked
//! threads woken, a late worker's share done by the caller, panics (and panicking payloads)
//! carried to the caller, row buffers split into parts, nested calls, and joining on drop.

use super::{Pool, SPIN_TIME};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Runs `chunks` chunks and checks each ran once, with slots in range and never two
/// threads on one slot at a time.
fn check_once(pool: &Pool, chunks: usize, pause: impl Fn(usize, usize) + Sync) {
    let hits: Vec<AtomicUsize> = (0..chunks).map(|_| AtomicUsize::new(0)).collect();
    let busy: Vec<AtomicBool> = (0..pool.threads())
        .map(|_| AtomicBool::new(false))
        .collect();
    pool.run_chunks(chunks, |slot, c| {
        assert!(
            !busy[slot].swap(true, Ordering::SeqCst),
            "slot {slot} shared"
        );
        pause(slot, c);
        hits[c].fetch_add(1, Ordering::Relaxed);
        busy[slot].store(false, Ordering::SeqCst);
    });
    for (c, h) in hits.iter().enumerate() {
        assert_eq!(h.load(Ordering::Relaxed), 1, "chunk {c} of {chunks}");
    }
}

#[test]
fn every_chunk_runs_exactly_once_per_call() {
    for threads in [1, 2, 3] {
        let pool = Pool::new(threads);
        assert_eq!(pool.threads(), threads);
        for chunks in [0, 1, 2, 3, 7, 64] {
            for _ in 0..50 {
                check_once(&pool, chunks, |_, _| {});
            }
        }
    }
}

#[test]
fn parked_workers_and_a_parked_caller_are_woken() {
    // Gaps longer than the spin time park the workers between calls; a slow chunk parks
    // the caller. Every call must still run every chunk once (a missed wake-up hangs here).
    let pool = Pool::new(3);
    let pause = SPIN_TIME * 3;
    let mut parked = 0;
    for call in 0..40 {
        if call % 2 == 0 {
            std::thread::sleep(pause);
            parked = parked.max(pool.shared.parked.load(Ordering::SeqCst));
        }
        check_once(&pool, 6, |_, c| {
            if c == 1 && call % 3 == 0 {
                std::thread::sleep(pause);
            }
        });
    }
    // The pauses did park the workers: the wake-up paths above were taken.
    assert!(parked > 0);
}

#[test]
fn the_caller_does_the_work_of_a_late_worker() {
    // When the caller's chunks are slow the worker takes the rest; when the worker's are
    // slow the caller does. Either way each chunk runs once and no slot is shared.
    let pool = Pool::new(2);
    let slots = Mutex::new(Vec::new());
    pool.run_chunks(8, |slot, _| {
        slots.lock().unwrap().push(slot);
        if slot == 0 {
            std::thread::sleep(Duration::from_millis(5));
        }
    });
    let slots = slots.into_inner().unwrap();
    assert_eq!(slots.len(), 8);
    assert!(slots.contains(&1), "the worker never joined: {slots:?}");
    for _ in 0..20 {
        check_once(&pool, 8, |slot, _| {
            if slot == 1 {
                std::thread::sleep(Duration::from_millis(2));
            }
        });
    }
}

#[test]
fn worker_panic_is_raised_on_caller_and_pool_stays_usable() {
    let pool = Pool::new(2);
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // Every chunk sleeps, so both threads surely take some; each panics in its first.
        pool.run_chunks(64, |slot, _| {
            std::thread::sleep(Duration::from_micros(200));
            assert!(slot != 1, "boom in worker");
        });
    }));
    assert!(r.is_err());
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        pool.run_chunks(8, |slot, _| {
            std::thread::sleep(Duration::from_micros(200));
            assert!(slot != 0, "boom in caller");
        });
    }));
    assert!(r.is_err());
    check_once(&pool, 16, |_, _| {});
}

/// A panic payload whose drop panics again.
struct Bomb;
impl Drop for Bomb {
    fn drop(&mut self) {
        panic!("the payload's drop panics");
    }
}

/// A worker's panic whose payload panics again when dropped: the worker died before it
/// counted itself finished, and the caller waited for it forever (found by an audit).
#[test]
fn a_payload_that_panics_when_dropped_does_not_hang_the_caller() {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let pool = Pool::new(2);
        let (_, r) = bomb_in_worker(&pool, || {});
        let raised = r.is_err();
        // The pool stays usable.
        check_once(&pool, 16, |_, _| {});
        let _ = tx.send(raised);
    });
    match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(raised) => assert!(raised, "the worker's panic must reach the caller"),
        Err(_) => panic!("run_chunks hung after a worker's payload panicked on drop"),
    }
}

/// Holds a chunk until a worker has joined the call (`joined` set) or `deadline` passes, so
/// that on a loaded machine the caller does not run every chunk itself.
fn wait_for_worker(joined: &AtomicBool, deadline: std::time::Instant) {
    while !joined.load(Ordering::SeqCst) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// 64 chunks on `pool` where the worker in slot 1 panics with a [`Bomb`], and every other
/// chunk waits (up to 10 s) for that worker to join, then runs `after`. Returns whether a
/// worker joined and what the call raised.
fn bomb_in_worker(pool: &Pool, after: impl Fn() + Sync) -> (bool, std::thread::Result<()>) {
    let joined = AtomicBool::new(false);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        pool.run_chunks(64, |slot, _| {
            if slot == 1 {
                joined.store(true, Ordering::SeqCst);
                std::panic::panic_any(Bomb);
            }
            wait_for_worker(&joined, deadline);
            after();
        });
    }));
    (joined.into_inner(), r)
}

/// When the caller and a worker both panic, the caller's own payload is raised, and the
/// worker's, whose drop panics, is leaked: dropped there, its panic would replace the
/// caller's.
#[test]
fn the_callers_panic_wins_over_a_worker_payload_that_panics_when_dropped() {
    let pool = Pool::new(2);
    let (joined, r) = bomb_in_worker(&pool, || std::panic::panic_any("boom in caller"));
    assert!(joined, "no worker joined");
    let payload = r.err().unwrap_or_else(|| panic!("no panic raised"));
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"boom in caller"));
    check_once(&pool, 16, |_, _| {});
}

/// Rows that do not tile the buffer are not split: every float reaches `f` (a tail past the
/// last whole row, or a row wider than the buffer, was skipped on the threads).
#[test]
fn rows_that_do_not_tile_the_buffer_reach_f_whole() {
    let pool = Pool::new(2);
    for (len, width) in [(16 * 1024 + 10, 64), (16 * 1024, 20_000)] {
        let mut v = vec![0f32; len];
        pool.rows_mut(&mut v, width, |p| p.iter_mut().for_each(|x| *x += 1.0));
        assert!(v.iter().all(|&x| x == 1.0), "rows_mut {len}/{width}");
        let src = vec![1f32; len];
        let mut dst = vec![0f32; len];
        pool.rows_map(&src, width, &mut dst, width, |a, b| {
            b.iter_mut().zip(a).for_each(|(y, x)| *y += x)
        });
        assert!(dst.iter().all(|&x| x == 1.0), "rows_map {len}/{width}");
    }
}

#[test]
fn row_parts_cover_every_row_once_on_any_thread_count() {
    for threads in [1, 2, 3] {
        let pool = Pool::new(threads);
        for rows in [1, 7, 300, 1000] {
            let width = 64;
            let mut v = vec![1f32; rows * width];
            pool.rows_mut(&mut v, width, |part| {
                assert_eq!(part.len() % width, 0);
                part.iter_mut().for_each(|x| *x += 1.0);
            });
            assert!(
                v.iter().all(|&x| x == 2.0),
                "{threads} threads, {rows} rows"
            );
            let src: Vec<f32> = (0..rows * width).map(|i| i as f32).collect();
            let mut dst = vec![0f32; rows];
            pool.rows_map(&src, width, &mut dst, 1, |s, d| {
                for (row, o) in s.chunks_exact(width).zip(d.iter_mut()) {
                    *o = row[0];
                }
            });
            let want: Vec<f32> = (0..rows).map(|r| (r * width) as f32).collect();
            assert_eq!(dst, want, "{threads} threads, {rows} rows");
        }
    }
}

/// `on_worker_thread` is false on the caller (slot 0, and outside any call) and true on a
/// worker (the slots above 0). The caller's chunks wait (10 s at most in all) for a worker
/// to join.
#[test]
fn on_worker_thread_tells_workers_from_the_caller() {
    assert!(!super::on_worker_thread());
    let pool = Pool::new(2);
    let joined = AtomicBool::new(false);
    let seen = Mutex::new(Vec::new());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    pool.run_chunks(64, |slot, _| {
        seen.lock().unwrap().push((slot, super::on_worker_thread()));
        if slot != 0 {
            joined.store(true, Ordering::SeqCst);
        }
        wait_for_worker(&joined, deadline);
    });
    let seen = seen.into_inner().unwrap();
    assert!(seen.iter().any(|&(slot, _)| slot != 0), "no worker joined");
    for (slot, worker) in seen {
        assert_eq!(worker, slot != 0, "slot {slot}");
    }
    assert!(!super::on_worker_thread());
}

/// A worker joins every call, not only the first ones: each call's chunks wait (5 s at most
/// in all) for slot 1 to take one. (A call number that stopped changing after the second
/// call left the workers waiting for a call that never came; the caller ran every chunk.)
#[test]
fn a_worker_joins_every_call() {
    let pool = Pool::new(2);
    for call in 0..6 {
        let joined = AtomicBool::new(false);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        pool.run_chunks(64, |slot, _| {
            if slot == 1 {
                joined.store(true, Ordering::SeqCst);
            }
            wait_for_worker(&joined, deadline);
        });
        assert!(joined.into_inner(), "call {call}: no worker joined");
    }
}

/// Dropping a pool stops and joins its workers: once `drop` returns, none of them holds
/// the shared state any more (a worker left parked would keep its reference for ever).
#[test]
fn drop_stops_and_joins_the_workers() {
    for threads in [2, 3] {
        let pool = Pool::new(threads);
        check_once(&pool, 8, |_, _| {});
        let shared = std::sync::Arc::downgrade(&pool.shared);
        // Let the workers park, then drop: the shutdown must wake them too.
        std::thread::sleep(SPIN_TIME * 3);
        drop(pool);
        assert!(shared.upgrade().is_none(), "{threads} threads");
    }
}

/// `rows_mut` and `rows_map` on `threads` threads: (calls of `f`, floats of the parts it
/// got, and for `rows_map` floats of the dst parts).
fn parts(threads: usize, src: usize, dst: usize, dst_width: usize) -> [(usize, usize, usize); 2] {
    let pool = Pool::new(threads);
    let (calls, seen, seen_dst) = (
        AtomicUsize::new(0),
        AtomicUsize::new(0),
        AtomicUsize::new(0),
    );
    let mut data = vec![0f32; src];
    pool.rows_mut(&mut data, 64, |p| {
        calls.fetch_add(1, Ordering::SeqCst);
        seen.fetch_add(p.len(), Ordering::SeqCst);
    });
    let mutated = (
        calls.swap(0, Ordering::SeqCst),
        seen.swap(0, Ordering::SeqCst),
        0,
    );
    let mut out = vec![0f32; dst];
    pool.rows_map(&data, 64, &mut out, dst_width, |a, b| {
        calls.fetch_add(1, Ordering::SeqCst);
        seen.fetch_add(a.len(), Ordering::SeqCst);
        seen_dst.fetch_add(b.len(), Ordering::SeqCst);
    });
    let mapped = (calls.into_inner(), seen.into_inner(), seen_dst.into_inner());
    [mutated, mapped]
}

/// A buffer of at least `MIN_PARALLEL_FLOATS` (16 Ki) floats on several threads is cut into
/// several parts of whole rows; a smaller one, any buffer on one thread, and for `rows_map`
/// a src or dst that is not whole rows, or not the same number of rows on both sides, goes
/// to `f` whole (one call).
#[test]
fn large_row_buffers_are_split_and_the_rest_go_whole() {
    // 256 rows of 64 floats: exactly 16 Ki, split on 2 threads.
    let [m, r] = parts(2, 256 * 64, 256, 1);
    assert!(m.0 > 1 && m.1 == 256 * 64, "rows_mut {m:?}");
    assert!(r.0 > 1 && r.1 == 256 * 64 && r.2 == 256, "rows_map {r:?}");
    // The same with dst rows of 2 floats.
    let [_, r] = parts(2, 256 * 64, 512, 2);
    assert!(r.0 > 1 && r.1 == 256 * 64 && r.2 == 512, "rows_map {r:?}");
    // One row less: whole.
    assert_eq!(
        parts(2, 255 * 64, 255, 1),
        [(1, 255 * 64, 0), (1, 255 * 64, 255)]
    );
    // One thread: whole.
    assert_eq!(
        parts(1, 1000 * 64, 1000, 1),
        [(1, 64_000, 0), (1, 64_000, 1000)]
    );
    // rows_map: a src tail of 10 floats; 255 dst rows for 256 src rows; a dst of 256 rows of
    // 2 and one float more.
    assert_eq!(parts(2, 256 * 64 + 10, 256, 1)[1], (1, 256 * 64 + 10, 256));
    assert_eq!(parts(2, 256 * 64, 255, 1)[1], (1, 256 * 64, 255));
    assert_eq!(parts(2, 256 * 64, 513, 2)[1], (1, 256 * 64, 513));
    // A dst row width of 0 is not whole rows either.
    assert_eq!(parts(2, 256 * 64, 0, 0)[1], (1, 256 * 64, 0));
}

#[test]
fn nested_call_does_not_deadlock() {
    let pool = Pool::new(2);
    let count = AtomicUsize::new(0);
    pool.run_chunks(4, |_, _| {
        pool.run_chunks(3, |_, _| {
            count.fetch_add(1, Ordering::Relaxed);
        });
    });
    assert_eq!(count.load(Ordering::Relaxed), 12);
}
