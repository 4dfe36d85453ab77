//! `parfor::HugePages` as this test binary's global allocator: large allocations are 2 MiB
//! aligned, zero filled when asked, and advised huge pages, small ones untouched, and
//! reallocation keeps the contents in every direction (small to large, large to large, large
//! to small).

use parfor::HugePages;
use std::alloc::System;

#[global_allocator]
static ALLOC: HugePages<System> = HugePages::new(System);

const MIB: usize = 1 << 20;

fn aligned<T>(v: &[T]) -> bool {
    (v.as_ptr() as usize).is_multiple_of(2 * MIB)
}

fn pattern(n: usize) -> Vec<u64> {
    (0..n as u64).map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15)).collect()
}

#[test]
fn large_allocations_are_huge_page_aligned() {
    for bytes in [2 * MIB, 3 * MIB + 8, 64 * MIB] {
        let v: Vec<u8> = Vec::with_capacity(bytes);
        assert!(aligned(&v), "{bytes} bytes at {:p}", v.as_ptr());
        let z = vec![0u64; bytes / 8];
        assert!(aligned(&z) && z.iter().all(|&x| x == 0), "zeroed {bytes} bytes");
    }
    // Over-aligned requests keep their own, larger alignment.
    let layout = std::alloc::Layout::from_size_align(4 * MIB, 8 * MIB).unwrap();
    // SAFETY: a non-zero layout; the block is freed with the same layout.
    unsafe {
        let p = std::alloc::alloc(layout);
        assert!(!p.is_null() && (p as usize).is_multiple_of(8 * MIB));
        std::alloc::dealloc(p, layout);
    }
}

#[test]
fn reallocation_keeps_the_contents_across_the_threshold() {
    // Small, grown past the threshold (a new block), grown again (large to large), shrunk
    // below the threshold (a new block again).
    let want = pattern(4 * MIB / 8);
    let mut v: Vec<u64> = want[..1000].to_vec();
    v.reserve_exact(MIB / 8 * 3 - v.len()); // 3 MiB
    assert!(aligned(&v));
    v.extend_from_slice(&want[1000..MIB / 8 * 3]);
    v.reserve_exact(want.len() - v.len()); // 4 MiB, large to large: `mremap`, page aligned
    assert!((v.as_ptr() as usize).is_multiple_of(4096));
    v.extend_from_slice(&want[MIB / 8 * 3..]);
    assert_eq!(v, want);
    v.truncate(5000);
    v.shrink_to_fit(); // large to small
    assert_eq!(v, want[..5000]);
    // and large to a smaller large one
    let mut w = want.clone();
    w.truncate(3 * MIB / 8);
    w.shrink_to_fit();
    assert!(aligned(&w));
    assert_eq!(w, want[..3 * MIB / 8]);
}

#[test]
fn large_allocations_are_advised_huge_pages() {
    let thp = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled");
    let Ok(thp) = thp else {
        eprintln!("no transparent huge pages on this system: skipped");
        return;
    };
    if thp.contains("[never]") {
        eprintln!("transparent huge pages disabled ({}): skipped", thp.trim());
        return;
    }
    let mut v = vec![1u8; 64 * MIB];
    v[12345] = 2;
    let at = v.as_ptr() as usize;
    let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
    // The mapping holding `v`: its header line, then its fields up to the next header.
    let mut lines = smaps.lines().skip_while(|l| {
        let Some((range, _)) = l.split_once(' ') else { return true };
        let Some((a, b)) = range.split_once('-') else { return true };
        let (Ok(a), Ok(b)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16)) else {
            return true;
        };
        !(a <= at && at < b)
    });
    let header = lines.next().expect("the mapping of the vector in /proc/self/smaps");
    // Field lines start with `Name:`; the next mapping's header with an address range.
    let fields: Vec<&str> = lines
        .take_while(|l| l.split_whitespace().next().is_some_and(|w| w.ends_with(':')))
        .collect();
    let flags = fields.iter().find(|l| l.starts_with("VmFlags:")).expect("VmFlags");
    assert!(flags.split_whitespace().any(|f| f == "hg"), "not advised: {header}\n{flags}");
    let huge = fields.iter().find(|l| l.starts_with("AnonHugePages:")).expect("AnonHugePages");
    eprintln!("{header}: {huge} ({})", thp.trim());
    assert_eq!(v[12345], 2);
}
