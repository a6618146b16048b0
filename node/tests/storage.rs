//! One test suite, run on every storage engine: they must behave
//! identically (as toydb checks its engines), and persistent engines must
//! return after a reopen, and after a process crash, every write they
//! reported durable.

use std::collections::BTreeMap;
use std::io::Write;
use std::ops::Bound;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use bytes::Bytes;
use proptest::prelude::*;
use quorra_client::{MAX_KEY_LEN, MAX_VALUE_LEN};
use quorra_node::storage::store::{Change, StoredHint};
use quorra_node::storage::{Engine, EngineKind, StorageError, Store, WriteOp, open_engine};
use quorra_node::version::{Actor, Object, Sibling, VersionVector};
use quorra_ring::{NodeId, PartitionId};
use tempfile::TempDir;

/// Every engine, each in its own fresh directory.
fn engines() -> Vec<(EngineKind, TempDir, Arc<dyn Engine>)> {
    EngineKind::ALL
        .into_iter()
        .map(|kind| {
            let dir = tempfile::tempdir().unwrap();
            let engine = open_engine(kind, dir.path()).unwrap();
            (kind, dir, engine)
        })
        .collect()
}

fn put(key: &[u8], value: &[u8]) -> WriteOp {
    WriteOp::Put {
        key: key.to_vec(),
        value: value.to_vec(),
    }
}

fn object(value: &str) -> Object {
    let mut o = Object::new();
    o.update(
        &VersionVector::new(),
        Actor::new(NodeId(1), 0),
        Sibling::Value(Bytes::copy_from_slice(value.as_bytes())),
    )
    .unwrap();
    o
}

#[test]
fn get_put_delete() {
    for (kind, _dir, e) in engines() {
        assert_eq!(e.get(b"a").unwrap(), None, "{kind}");
        e.write(vec![put(b"a", b"1")]).unwrap();
        assert_eq!(e.get(b"a").unwrap(), Some(b"1".to_vec()), "{kind}");
        e.write(vec![put(b"a", b"2")]).unwrap();
        assert_eq!(e.get(b"a").unwrap(), Some(b"2".to_vec()), "{kind}");
        e.write(vec![WriteOp::Delete { key: b"a".to_vec() }])
            .unwrap();
        assert_eq!(e.get(b"a").unwrap(), None, "{kind}");
        // Deleting an absent key is not an error.
        e.write(vec![WriteOp::Delete {
            key: b"zz".to_vec(),
        }])
        .unwrap();
    }
}

#[test]
fn a_batch_applies_in_order() {
    for (kind, _dir, e) in engines() {
        e.write(vec![
            put(b"k", b"1"),
            put(b"k", b"2"),
            put(b"gone", b"x"),
            WriteOp::Delete {
                key: b"gone".to_vec(),
            },
        ])
        .unwrap();
        assert_eq!(e.get(b"k").unwrap(), Some(b"2".to_vec()), "{kind}");
        assert_eq!(e.get(b"gone").unwrap(), None, "{kind}");
    }
}

#[test]
fn scans_respect_bounds_order_and_limit() {
    for (kind, _dir, e) in engines() {
        let keys: Vec<&[u8]> = vec![b"b", b"a", b"d", b"c", b"e"];
        e.write(keys.iter().map(|k| put(k, k)).collect()).unwrap();
        let got = |from, to, limit| -> Vec<Vec<u8>> {
            e.scan(from, to, limit)
                .unwrap()
                .into_iter()
                .map(|p| p.0)
                .collect()
        };
        let all: Vec<Vec<u8>> = [b"a", b"b", b"c", b"d", b"e"]
            .iter()
            .map(|k| k.to_vec())
            .collect();
        assert_eq!(got(Bound::Unbounded, Bound::Unbounded, 100), all, "{kind}");
        assert_eq!(
            got(Bound::Excluded(b"b"), Bound::Excluded(b"e"), 100),
            all[2..4].to_vec(),
            "{kind}"
        );
        assert_eq!(
            got(Bound::Included(b"b"), Bound::Included(b"e"), 2),
            all[1..3].to_vec(),
            "{kind}"
        );
        assert!(
            got(Bound::Included(b"x"), Bound::Unbounded, 10).is_empty(),
            "{kind}"
        );
        // Inverted or empty ranges answer nothing; they never panic.
        assert!(
            got(Bound::Included(b"d"), Bound::Included(b"b"), 10).is_empty(),
            "{kind}"
        );
        assert!(
            got(Bound::Excluded(b"c"), Bound::Excluded(b"c"), 10).is_empty(),
            "{kind}"
        );
        assert!(
            got(Bound::Excluded(b"c"), Bound::Included(b"c"), 10).is_empty(),
            "{kind}"
        );
        assert_eq!(
            got(Bound::Included(b"c"), Bound::Included(b"c"), 10),
            vec![b"c".to_vec()],
            "{kind}"
        );
    }
}

#[test]
fn lsns_count_batches_and_flush_makes_them_durable() {
    for (kind, _dir, e) in engines() {
        assert_eq!((e.applied_lsn(), e.durable_lsn()), (0, 0), "{kind}");
        assert_eq!(e.write(vec![put(b"a", b"1")]).unwrap(), 1, "{kind}");
        assert_eq!(
            e.write(vec![put(b"b", b"1"), put(b"c", b"1")]).unwrap(),
            2,
            "{kind}"
        );
        assert_eq!(e.durable_lsn(), 0, "{kind}: nothing flushed yet");
        assert_eq!(e.flush().unwrap(), 2, "{kind}");
        assert_eq!(e.durable_lsn(), 2, "{kind}");
        assert_eq!(
            e.flush().unwrap(),
            2,
            "{kind}: an idle flush changes nothing"
        );
    }
}

#[test]
fn store_keeps_partitions_hints_and_meta_apart() {
    for (kind, _dir, e) in engines() {
        let s = Store::new(e);
        let (p1, p2) = (PartitionId(1), PartitionId(2));
        for key in ["b", "a", "c"] {
            s.put(p1, key.as_bytes(), &object(key)).unwrap();
        }
        s.put(p2, b"a", &object("other partition")).unwrap();
        s.apply(&[
            Change::PutHint {
                target: NodeId(9),
                partition: p1,
                key: b"h1",
                object: &object("hint"),
            },
            Change::PutHint {
                target: NodeId(4),
                partition: p2,
                key: b"h2",
                object: &object("hint"),
            },
            Change::PutMeta {
                name: "node-id",
                value: b"42",
            },
        ])
        .unwrap();

        let listed: Vec<Vec<u8>> = s
            .scan_partition(p1, None, 100)
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(
            listed,
            vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()],
            "{kind}"
        );
        let page: Vec<Vec<u8>> = s
            .scan_partition(p1, Some(b"a"), 1)
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(
            page,
            vec![b"b".to_vec()],
            "{kind}: paging continues after the cursor"
        );
        assert_eq!(
            s.scan_partition(PartitionId(3), None, 10).unwrap(),
            vec![],
            "{kind}"
        );
        assert_eq!(
            s.get(p1, b"b")
                .unwrap()
                .unwrap()
                .live_values()
                .next()
                .unwrap(),
            &Bytes::from_static(b"b"),
            "{kind}"
        );

        assert_eq!(
            s.hint_targets().unwrap(),
            vec![NodeId(4), NodeId(9)],
            "{kind}"
        );
        let hints = s.scan_hints(NodeId(9), None, 10).unwrap();
        assert_eq!(
            hints,
            vec![StoredHint {
                target: NodeId(9),
                partition: p1,
                key: b"h1".to_vec(),
                object: object("hint"),
            }],
            "{kind}"
        );
        assert!(
            s.get(p1, b"h1").unwrap().is_none(),
            "{kind}: hints are not owned data"
        );
        s.apply(&[Change::DeleteHint {
            target: NodeId(9),
            partition: p1,
            key: b"h1",
        }])
        .unwrap();
        assert_eq!(s.hint_targets().unwrap(), vec![NodeId(4)], "{kind}");
        assert_eq!(
            s.get_meta("node-id").unwrap(),
            Some(b"42".to_vec()),
            "{kind}"
        );
        assert_eq!(s.get_meta("absent").unwrap(), None, "{kind}");
    }
}

#[test]
fn limits_are_typed_errors_and_nothing_is_written() {
    for (kind, _dir, e) in engines() {
        let s = Store::new(e.clone());
        let p = PartitionId(0);
        let big_key = vec![b'k'; MAX_KEY_LEN + 1];
        assert_eq!(
            s.put(p, &big_key, &object("v")),
            Err(StorageError::KeyTooLarge {
                len: MAX_KEY_LEN + 1,
                max: MAX_KEY_LEN
            }),
            "{kind}"
        );
        assert_eq!(
            s.put(p, b"", &object("v")),
            Err(StorageError::EmptyKey),
            "{kind}"
        );
        let mut huge = Object::new();
        huge.update(
            &VersionVector::new(),
            Actor::new(NodeId(1), 0),
            Sibling::Value(Bytes::from(vec![0u8; MAX_VALUE_LEN + 1])),
        )
        .unwrap();
        let ok = object("fine");
        // One bad change in a batch: nothing of the batch is written.
        let result = s.apply(&[
            Change::Put {
                partition: p,
                key: b"first",
                object: &ok,
                encoded: None,
            },
            Change::Put {
                partition: p,
                key: b"second",
                object: &huge,
                encoded: None,
            },
        ]);
        assert!(
            matches!(result, Err(StorageError::ValueTooLarge { .. })),
            "{kind}"
        );
        assert_eq!(s.get(p, b"first").unwrap(), None, "{kind}");
        assert_eq!(e.applied_lsn(), 0, "{kind}: the engine saw nothing");
        // A key of exactly the limit is fine, and the store still works.
        let max_key = vec![b'k'; MAX_KEY_LEN];
        s.put(p, &max_key, &ok).unwrap();
        assert_eq!(s.get(p, &max_key).unwrap(), Some(ok), "{kind}");
    }
}

#[test]
fn corrupt_records_are_errors_not_panics() {
    for (kind, _dir, e) in engines() {
        let s = Store::new(e.clone());
        let key = quorra_node::storage::layout::data_key(PartitionId(5), b"bad");
        e.write(vec![WriteOp::Put {
            key,
            value: vec![0xc1, 0x00, 0xff],
        }])
        .unwrap();
        assert!(
            matches!(
                s.get(PartitionId(5), b"bad"),
                Err(StorageError::Corrupt { .. })
            ),
            "{kind}"
        );
        assert!(
            s.scan_partition(PartitionId(5), None, 10).is_err(),
            "{kind}"
        );
        // The rest of the store is unaffected.
        s.put(PartitionId(6), b"good", &object("v")).unwrap();
        assert!(s.get(PartitionId(6), b"good").unwrap().is_some(), "{kind}");
    }
}

#[derive(Clone, Debug)]
enum Op {
    Put(u8, u8),
    Delete(u8),
    Batch(Vec<(u8, Option<u8>)>),
    Scan(u8, u8, usize),
    Flush,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u8..20, any::<u8>()).prop_map(|(k, v)| Op::Put(k, v)),
        (0u8..20).prop_map(Op::Delete),
        proptest::collection::vec((0u8..20, proptest::option::of(any::<u8>())), 1..5)
            .prop_map(Op::Batch),
        (0u8..20, 0u8..20, 0usize..8).prop_map(|(a, b, l)| Op::Scan(a, b, l)),
        Just(Op::Flush),
    ]
}

fn to_op(k: u8, v: Option<u8>) -> WriteOp {
    match v {
        Some(v) => put(&[k], &[v]),
        None => WriteOp::Delete { key: vec![k] },
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// The same random history on every engine and on a `BTreeMap` gives the
    /// same answers.
    #[test]
    fn engines_behave_identically(ops in proptest::collection::vec(op(), 1..80)) {
        let engines = engines();
        let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        for op in &ops {
            let ops_for = |op: &Op| -> Vec<WriteOp> {
                match op {
                    Op::Put(k, v) => vec![to_op(*k, Some(*v))],
                    Op::Delete(k) => vec![to_op(*k, None)],
                    Op::Batch(items) => items.iter().map(|(k, v)| to_op(*k, *v)).collect(),
                    _ => Vec::new(),
                }
            };
            match op {
                Op::Scan(a, b, limit) => {
                    let (a, b) = ([*a.min(b)], [*a.max(b)]);
                    let expected: Vec<(Vec<u8>, Vec<u8>)> = model
                        .range::<[u8], _>((Bound::Included(&a[..]), Bound::Excluded(&b[..])))
                        .take(*limit)
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect();
                    for (kind, _d, e) in &engines {
                        let got = e.scan(Bound::Included(&a), Bound::Excluded(&b), *limit).unwrap();
                        prop_assert_eq!(&got, &expected, "{}", kind);
                    }
                }
                Op::Flush => {
                    for (kind, _d, e) in &engines {
                        let durable = e.flush().unwrap();
                        prop_assert_eq!(durable, e.applied_lsn(), "{}", kind);
                    }
                }
                write => {
                    let writes = ops_for(write);
                    for w in &writes {
                        match w {
                            WriteOp::Put { key, value } => { model.insert(key.clone(), value.clone()); }
                            WriteOp::Delete { key } => { model.remove(key); }
                        }
                    }
                    for (_k, _d, e) in &engines {
                        e.write(writes.clone()).unwrap();
                    }
                }
            }
        }
        for (kind, _d, e) in &engines {
            let all = e.scan(Bound::Unbounded, Bound::Unbounded, usize::MAX).unwrap();
            let expected: Vec<(Vec<u8>, Vec<u8>)> = model.clone().into_iter().collect();
            prop_assert_eq!(all, expected, "{}", kind);
        }
    }
}

const PERSISTENT: [EngineKind; 2] = [EngineKind::Fjall, EngineKind::Sled];

#[test]
fn reopened_engines_return_flushed_writes() {
    for kind in PERSISTENT {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Store::new(open_engine(kind, dir.path()).unwrap());
            for i in 0..200u32 {
                s.put(
                    PartitionId(i % 7),
                    format!("key{i}").as_bytes(),
                    &object(&i.to_string()),
                )
                .unwrap();
            }
            s.put_meta("tokens", b"1,2,3").unwrap();
            s.flush().unwrap();
            // A sync (what incarnation and identity records get) makes
            // later writes durable too, and reports how far.
            s.put_meta("incarnation", &7u32.to_be_bytes()).unwrap();
            let applied = s.applied_lsn();
            assert_eq!(s.sync_all().unwrap(), applied, "{kind}");
        }
        let s = Store::new(reopen(kind, dir.path()));
        assert_eq!(
            s.get_meta("incarnation").unwrap(),
            Some(7u32.to_be_bytes().to_vec()),
            "{kind}"
        );
        for i in 0..200u32 {
            let got = s
                .get(PartitionId(i % 7), format!("key{i}").as_bytes())
                .unwrap();
            assert_eq!(got, Some(object(&i.to_string())), "{kind} key{i}");
        }
        assert_eq!(
            s.get_meta("tokens").unwrap(),
            Some(b"1,2,3".to_vec()),
            "{kind}"
        );
    }
}

const CHILD_DIR: &str = "QUORRA_STORAGE_CRASH_DIR";
const CHILD_ENGINE: &str = "QUORRA_STORAGE_CRASH_ENGINE";
const ROUNDS: u32 = 20;
const PER_ROUND: u32 = 50;

/// Runs inside the child process: writes rounds of keys, flushing after
/// each round and reporting it, then writes more without flushing and
/// aborts (no destructors, no clean shutdown).
fn crash_child(dir: &Path, kind: EngineKind) -> ! {
    let s = Store::new(open_engine(kind, dir).unwrap());
    let mut out = std::io::stdout();
    for round in 0..ROUNDS {
        for i in 0..PER_ROUND {
            let n = round * PER_ROUND + i;
            s.put(
                PartitionId(n % 16),
                format!("k{n}").as_bytes(),
                &object(&n.to_string()),
            )
            .unwrap();
        }
        s.flush().unwrap();
        writeln!(out, "durable {}", (round + 1) * PER_ROUND).unwrap();
        out.flush().unwrap();
    }
    for n in ROUNDS * PER_ROUND..ROUNDS * PER_ROUND + 500 {
        s.put(
            PartitionId(n % 16),
            format!("k{n}").as_bytes(),
            &object("unflushed"),
        )
        .unwrap();
    }
    std::process::abort();
}

#[test]
fn durable_writes_survive_a_process_crash() {
    if let (Ok(dir), Ok(kind)) = (std::env::var(CHILD_DIR), std::env::var(CHILD_ENGINE)) {
        crash_child(Path::new(&dir), kind.parse().unwrap());
    }
    for kind in PERSISTENT {
        let dir = tempfile::tempdir().unwrap();
        let output = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "durable_writes_survive_a_process_crash",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_DIR, dir.path())
            .env(CHILD_ENGINE, kind.name())
            .output()
            .unwrap();
        assert!(!output.status.success(), "{kind}: the child must abort");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let durable: u32 = stdout
            .lines()
            .filter_map(|l| l.strip_prefix("durable "))
            .filter_map(|n| n.trim().parse().ok())
            .max()
            .unwrap_or_else(|| panic!("{kind}: child reported nothing: {stdout}"));
        assert_eq!(durable, ROUNDS * PER_ROUND, "{kind}");
        let s = Store::new(open_engine(kind, dir.path()).unwrap());
        for n in 0..durable {
            let got = s
                .get(PartitionId(n % 16), format!("k{n}").as_bytes())
                .unwrap();
            assert_eq!(
                got,
                Some(object(&n.to_string())),
                "{kind}: durable write k{n} lost"
            );
        }
    }
}

/// One step of the cache property below.
#[derive(Clone, Debug)]
enum CacheStep {
    Put(u8, u8),
    Delete(u8),
    Get(u8),
    /// An apply of two puts, one of them oversized: refused as a whole.
    RefusedBatch(u8, u8),
}

fn cache_step() -> impl Strategy<Value = CacheStep> {
    prop_oneof![
        (0..6u8, any::<u8>()).prop_map(|(k, v)| CacheStep::Put(k, v)),
        (0..6u8).prop_map(CacheStep::Delete),
        (0..6u8).prop_map(CacheStep::Get),
        (0..6u8, 0..6u8).prop_map(|(a, b)| CacheStep::RefusedBatch(a, b)),
    ]
}

proptest! {
    /// A store with a cache (tiny, so it keeps shrinking) reads exactly what
    /// a store without one reads, and what it wrote reaches the engine.
    #[test]
    fn a_cached_store_reads_what_an_uncached_one_reads(
        steps in prop::collection::vec(cache_step(), 1..80),
    ) {
        let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let engine = open_engine(EngineKind::Memory, dir_a.path()).unwrap();
        let cached = Store::with_cache(engine.clone(), 2_000);
        let plain = Store::new(open_engine(EngineKind::Memory, dir_b.path()).unwrap());
        let p = PartitionId(3);
        let key = |k: u8| vec![b'k', k];
        let huge = {
            let mut o = Object::new();
            let value = Sibling::Value(Bytes::from(vec![0u8; MAX_VALUE_LEN + 1]));
            o.update(&VersionVector::default(), Actor::new(NodeId(1), 1), value).unwrap();
            o
        };
        for step in steps {
            match step {
                CacheStep::Put(k, v) => {
                    let o = object(&format!("v{v}"));
                    cached.put(p, &key(k), &o).unwrap();
                    plain.put(p, &key(k), &o).unwrap();
                }
                CacheStep::Delete(k) => {
                    cached.delete(p, &key(k)).unwrap();
                    plain.delete(p, &key(k)).unwrap();
                }
                CacheStep::Get(k) => {
                    prop_assert_eq!(cached.get(p, &key(k)).unwrap(), plain.get(p, &key(k)).unwrap());
                }
                CacheStep::RefusedBatch(a, b) => {
                    let small = object("small");
                    let batch = |store: &Store| store.apply(&[
                        Change::Put { partition: p, key: &key(a), object: &small, encoded: None },
                        Change::Put { partition: p, key: &key(b), object: &huge, encoded: None },
                    ]);
                    prop_assert!(batch(&cached).is_err());
                    prop_assert!(batch(&plain).is_err());
                }
            }
        }
        // The engine underneath holds what the cached store shows.
        let underneath = Store::new(engine);
        for k in 0..6 {
            prop_assert_eq!(underneath.get(p, &key(k)).unwrap(), plain.get(p, &key(k)).unwrap());
            prop_assert_eq!(cached.get(p, &key(k)).unwrap(), plain.get(p, &key(k)).unwrap());
        }
        prop_assert!(cached.cached_bytes() <= 2_000 + 200);
    }
}

/// Opens `dir` again. sled's background thread may hold the directory's
/// lock for a moment after the last handle is dropped: wait for it (up to
/// 5 s) rather than fail.
fn reopen(kind: EngineKind, dir: &Path) -> Arc<dyn Engine> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match open_engine(kind, dir) {
            Ok(e) => return e,
            Err(e) if std::time::Instant::now() < deadline && e.to_string().contains("lock") => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => panic!("{kind}: reopening failed: {e}"),
        }
    }
}

/// A data directory written with layout 1 (4-byte partitions under `d` and
/// `t`) reads the same after it is opened again: every record moved, none
/// left behind but a malformed one, an object whose new key was taken
/// (a downgrade, then an upgrade again) merged rather than overwritten, and
/// the next open moves nothing.
#[test]
fn layout_one_records_are_upgraded_on_open() {
    use quorra_node::storage::layout::data_key;
    use quorra_node::storage::upgrade::upgrade;
    // The encoding of an object, as layout 1 stored it too.
    let scratch = open_engine(EngineKind::Memory, Path::new("")).unwrap();
    Store::new(scratch.clone())
        .put(PartitionId(0), b"k", &object("v"))
        .unwrap();
    let encoded = scratch
        .get(&data_key(PartitionId(0), b"k"))
        .unwrap()
        .unwrap();
    let legacy = |tag: u8, partition: u32, key: &[u8]| {
        let mut out = vec![tag];
        out.extend_from_slice(&partition.to_be_bytes());
        out.extend_from_slice(key);
        out
    };
    for kind in [EngineKind::Fjall, EngineKind::Sled] {
        let dir = tempfile::tempdir().unwrap();
        {
            let e = open_engine(kind, dir.path()).unwrap();
            // More than one upgrade batch, over partitions whose numbers
            // use all three bytes.
            let mut ops: Vec<WriteOp> = (0..2500u32)
                .map(|i| {
                    put(
                        &legacy(b'd', i * 419, format!("key{i}").as_bytes()),
                        &encoded,
                    )
                })
                .collect();
            ops.push(put(&legacy(b't', 1023, b"gone"), b""));
            ops.push(put(b"d\x00\x01", b"too short to be a record"));
            e.write(ops).unwrap();
            // Written in layout 2 and, by a downgraded binary, in layout 1.
            let s = Store::new(e.clone());
            s.put(PartitionId(7), b"both", &object("new")).unwrap();
            let mut other = Object::new();
            other
                .update(
                    &VersionVector::new(),
                    Actor::new(NodeId(2), 0),
                    Sibling::Value(Bytes::from_static(b"old")),
                )
                .unwrap();
            let older = {
                let scratch = open_engine(EngineKind::Memory, Path::new("")).unwrap();
                Store::new(scratch.clone())
                    .put(PartitionId(7), b"both", &other)
                    .unwrap();
                scratch
                    .get(&data_key(PartitionId(7), b"both"))
                    .unwrap()
                    .unwrap()
            };
            e.write(vec![put(&legacy(b'd', 7, b"both"), &older)])
                .unwrap();
            e.flush().unwrap();
        }
        let e = reopen(kind, dir.path());
        let s = Store::new(e.clone());
        for i in (0..2500u32).step_by(97) {
            assert_eq!(
                s.get(PartitionId(i * 419), format!("key{i}").as_bytes())
                    .unwrap(),
                Some(object("v")),
                "{kind}: key{i}"
            );
        }
        assert_eq!(
            s.scan_partition(PartitionId(419), None, 10).unwrap().len(),
            1
        );
        assert_eq!(
            s.scan_tomb_marks(None, 10).unwrap(),
            vec![(PartitionId(1023), b"gone".to_vec())],
            "{kind}"
        );
        for old in [b'd', b't'] {
            let left: Vec<_> = e
                .scan(Bound::Included(&[old]), Bound::Excluded(&[old + 1]), 10)
                .unwrap()
                .into_iter()
                .map(|(k, _)| k)
                .filter(|k| k.as_slice() != b"d\x00\x01")
                .collect();
            assert!(left.is_empty(), "{kind}: layout-1 records left: {left:?}");
        }
        let mut both: Vec<_> = s
            .get(PartitionId(7), b"both")
            .unwrap()
            .unwrap()
            .live_values()
            .cloned()
            .collect();
        both.sort();
        assert_eq!(both, [&b"new"[..], &b"old"[..]], "{kind}: merged");
        assert_eq!(
            e.get(b"d\x00\x01").unwrap().as_deref(),
            Some(&b"too short to be a record"[..]),
            "{kind}: the malformed record stays for an operator"
        );
        assert_eq!(upgrade(e.as_ref()).unwrap(), 0, "{kind}");
    }
}

/// A fjall directory made with the first storage options (keyspace
/// `quorra`: fjall's default pinning, values apart from 16 KiB) reads the
/// same after it is opened again: every record moved into the current
/// keyspace in more than one batch, an object both keyspaces held (a
/// downgrade wrote the old one) merged, one that cannot be merged set
/// aside where the node never reads it, the old keyspace dropped, and the
/// next open moves nothing.
#[test]
fn a_fjall_directory_of_earlier_storage_options_is_moved_on_open() {
    use fjall::{Database, KeyspaceCreateOptions, KvSeparationOptions, PersistMode};
    use quorra_node::storage::fjall_engine::{KEYSPACE, LEGACY_KEYSPACES, UNMOVED_KEYSPACE};
    use quorra_node::storage::layout::{data_key, hint_key, meta_key, tomb_key};
    let encode = |o: &Object| {
        let scratch = open_engine(EngineKind::Memory, Path::new("")).unwrap();
        Store::new(scratch.clone())
            .put(PartitionId(0), b"x", o)
            .unwrap();
        scratch
            .get(&data_key(PartitionId(0), b"x"))
            .unwrap()
            .unwrap()
    };
    let mut other = Object::new();
    other
        .update(
            &VersionVector::new(),
            Actor::new(NodeId(2), 0),
            Sibling::Value(Bytes::from_static(b"old")),
        )
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    // 20 KiB values: more than one 16 MiB batch of the move.
    let big = object(&"b".repeat(20 * 1024));
    {
        let db = Database::builder(dir.path())
            .manual_journal_persist(true)
            .open()
            .unwrap();
        let old = db
            .keyspace(LEGACY_KEYSPACES[0], || {
                KeyspaceCreateOptions::default()
                    .manual_journal_persist(true)
                    .with_kv_separation(Some(
                        KvSeparationOptions::default().separation_threshold(16 * 1024),
                    ))
            })
            .unwrap();
        for i in 0..2000u32 {
            let value = if i % 2 == 0 {
                encode(&big)
            } else {
                encode(&object("v"))
            };
            old.insert(
                data_key(PartitionId(i % 1024), format!("k{i}").as_bytes()),
                value,
            )
            .unwrap();
        }
        old.insert(
            hint_key(NodeId(3), PartitionId(5), b"h"),
            encode(&object("hint")),
        )
        .unwrap();
        old.insert(tomb_key(PartitionId(9), b"t"), b"").unwrap();
        old.insert(meta_key("node-id"), b"42").unwrap();
        old.insert(data_key(PartitionId(7), b"both"), encode(&other))
            .unwrap();
        old.insert(data_key(PartitionId(7), b"bad"), b"not an object")
            .unwrap();
        // What a current binary wrote before a downgrade.
        let new = db
            .keyspace(KEYSPACE, KeyspaceCreateOptions::default)
            .unwrap();
        new.insert(data_key(PartitionId(7), b"both"), encode(&object("new")))
            .unwrap();
        new.insert(data_key(PartitionId(7), b"bad"), encode(&object("kept")))
            .unwrap();
        db.persist(PersistMode::SyncAll).unwrap();
    }
    for round in 0..2 {
        let e = open_engine(EngineKind::Fjall, dir.path()).unwrap();
        let s = Store::new(e.clone());
        for i in (0..2000u32).step_by(37) {
            let want = if i % 2 == 0 { big.clone() } else { object("v") };
            assert_eq!(
                s.get(PartitionId(i % 1024), format!("k{i}").as_bytes())
                    .unwrap(),
                Some(want),
                "round {round}: k{i}"
            );
        }
        let moved = e
            .scan(Bound::Unbounded, Bound::Unbounded, usize::MAX)
            .unwrap()
            .len();
        assert_eq!(moved, 2000 + 5, "round {round}");
        assert_eq!(
            s.get(PartitionId(7), b"bad").unwrap(),
            Some(object("kept")),
            "round {round}"
        );
        assert_eq!(s.scan_hints(NodeId(3), None, 10).unwrap().len(), 1);
        assert_eq!(s.scan_tomb_marks(None, 10).unwrap().len(), 1);
        assert_eq!(
            e.get(&meta_key("node-id")).unwrap().as_deref(),
            Some(&b"42"[..])
        );
        let mut both: Vec<_> = s
            .get(PartitionId(7), b"both")
            .unwrap()
            .unwrap()
            .live_values()
            .cloned()
            .collect();
        both.sort();
        assert_eq!(both, [&b"new"[..], &b"old"[..]], "round {round}: merged");
        drop((s, e));
        let db = Database::builder(dir.path()).open().unwrap();
        assert!(!db.keyspace_exists(LEGACY_KEYSPACES[0]), "round {round}");
        let unmoved = db
            .keyspace(UNMOVED_KEYSPACE, KeyspaceCreateOptions::default)
            .unwrap();
        assert_eq!(
            unmoved
                .get(data_key(PartitionId(7), b"bad"))
                .unwrap()
                .as_deref(),
            Some(&b"not an object"[..]),
            "round {round}: set aside for an operator"
        );
    }
}
