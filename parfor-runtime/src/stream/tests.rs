use super::items::{Feed, Work};
use super::threads::Sizing;
use std::time::Duration;

#[test]
fn feeds_cut_batches_in_order() {
    let mut f: Feed<'_, u8> = Feed::range(10);
    let mut got = Vec::new();
    while let Some(Work::Range(r)) = f.next(4) {
        got.push(r);
    }
    assert_eq!(got, [0..4, 4..8, 8..10]);
    let mut f = Feed::pull(Box::new("abcde".chars()));
    let mut got = Vec::new();
    while let Some(w) = f.next(2) {
        let Work::Items(start, v) = w else { panic!("a lazy feed carries elements") };
        got.push((start, v.into_iter().collect::<String>()));
    }
    assert_eq!(got, [(0, "ab".into()), (2, "cd".into()), (4, "e".into())]);
    assert!(f.next(2).is_none(), "an ended iterator is not pulled again");
}

#[test]
fn a_user_window_is_never_exceeded_and_batches_start_small() {
    let mut s = Sizing::new(Some(10), 1024, 2, None, None);
    assert_eq!(s.next(0), 1, "the first batch is one item: its cost is unknown");
    assert_eq!(s.next(1), 2);
    // Cheap items would want big batches; the window says 10.
    s.observe(100, Duration::from_nanos(100));
    assert!(s.next(0) <= 10);
    assert_eq!(s.next(9), 1, "only the room left");
    assert_eq!(s.next(10), 0, "a full window dispatches nothing");
}

#[test]
fn the_default_window_grows_for_cheap_items_and_slow_items_go_one_by_one() {
    let mut s = Sizing::new(None, 2048, 2, None, Some(10_000_000));
    s.observe(1000, Duration::from_micros(1));
    let b = s.next(0);
    assert!(b > 2048 / 4, "cheap items travel in big batches once the window grew: {b}");
    let mut s = Sizing::new(None, 2048, 2, None, Some(10_000_000));
    s.observe(1, Duration::from_millis(2));
    assert_eq!(s.next(0), 1, "an item of 2 ms is a batch of its own");
    let mut s = Sizing::new(None, 2048, 2, Some(5), None);
    s.observe(1, Duration::from_millis(2));
    assert_eq!(s.next(0), 5, "`chunk` fixes the batch size");
}

#[test]
fn a_known_length_caps_batches_so_every_worker_gets_some() {
    let mut s = Sizing::new(None, 4096, 4, None, Some(200));
    s.observe(1000, Duration::from_micros(1));
    assert!(s.next(0) <= 200 / 32, "{}", s.next(0));
}
