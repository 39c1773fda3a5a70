//! Hostile kits written by hand in WAT, without the SDK or Rust's runtime:
//! a core module exporting the canonical-ABI functions of
//! `medic:kit/kit@0.1.3`, wrapped into a component with the project's WIT.
//! Whatever such a kit does inside `check`, the host holds.
#![allow(clippy::unwrap_used)] // a panic is a failed test

use std::path::Path;
use std::time::Duration;

use medic::sandbox::{CallScope, Kit, KitEngine, KitFault, Verdict};

/// A kit whose `check` body is `check_body` (it must leave an i32: a pointer
/// to the `health` result in memory, which starts zeroed: `healthy`).
fn wat_kit(check_body: &str) -> Vec<u8> {
    let wat = format!(
        r#"(module
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 1024))
  (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32)
    (local $p i32)
    global.get $heap
    local.get 2
    i32.add
    i32.const 1
    i32.sub
    i32.const 0
    local.get 2
    i32.sub
    i32.and
    local.tee $p
    local.get 3
    i32.add
    global.set $heap
    local.get $p)
  (func $recurse (param i32) (result i32)
    local.get 0
    i32.const 1
    i32.add
    call $recurse)
  (func (export "medic:kit/kit@0.1.3#describe") (result i32) unreachable)
  (func (export "medic:kit/kit@0.1.3#check") (param i32 i32 i32 i32 i32) (result i32)
    {check_body})
  (func (export "medic:kit/kit@0.1.3#recover") (param i32 i32 i32 i32 i32) (result i32) unreachable)
)"#
    );
    let mut module = wat::parse_str(&wat).unwrap();
    let mut resolve = wit_parser::Resolve::default();
    let (package, _) = resolve
        .push_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../wit"))
        .unwrap();
    let world = resolve
        .select_world(&[package], Some("recovery-kit"))
        .unwrap();
    wit_component::embed_component_metadata(
        &mut module,
        &resolve,
        world,
        wit_component::StringEncoding::UTF8,
    )
    .unwrap();
    wit_component::ComponentEncoder::default()
        .module(&module)
        .unwrap()
        .validate(true)
        .encode()
        .unwrap()
}

fn load(bytes: &[u8]) -> Kit {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hostile.wasm");
    std::fs::write(&path, bytes).unwrap();
    KitEngine::new(None).unwrap().load(&path).unwrap()
}

async fn check(check_body: &str) -> Result<Verdict, KitFault> {
    let kit = load(&wat_kit(check_body));
    let dir = tempfile::tempdir().unwrap();
    let scope = CallScope::new(
        "wat",
        &Default::default(),
        dir.path().join("state.json"),
        64 << 20,
    );
    kit.check(scope, Duration::from_millis(300), &[])
        .await
        .map(|checked| checked.health)
}

#[tokio::test]
async fn a_wat_kit_that_behaves_is_healthy() {
    assert_eq!(check("i32.const 16").await, Ok(Verdict::Healthy));
}

#[tokio::test]
async fn a_wat_kit_that_loops_is_stopped_at_the_deadline() {
    assert_eq!(
        check("(loop br 0) unreachable").await,
        Err(KitFault::Spinning(Duration::from_millis(300)))
    );
}

#[tokio::test]
async fn a_wat_kit_that_grows_memory_to_1_gib_is_refused() {
    // 16384 pages of 64 KiB = 1 GiB; a refused grow returns -1 and the kit traps.
    let result = check("(if (i32.eq (memory.grow (i32.const 16384)) (i32.const -1)) (then unreachable)) i32.const 16").await;
    assert_eq!(result, Err(KitFault::MemoryLimit(64 << 20)));
}

#[tokio::test]
async fn a_wat_kit_that_traps_is_a_kit_fault() {
    assert!(matches!(check("unreachable").await, Err(KitFault::Trap(_))));
}

#[tokio::test]
async fn a_wat_kit_that_recurses_forever_overflows_its_stack_not_the_host() {
    assert!(matches!(
        check("i32.const 0 call $recurse").await,
        Err(KitFault::Trap(_))
    ));
}

#[tokio::test]
async fn a_wat_kit_returning_a_wild_pointer_is_a_kit_fault() {
    assert!(matches!(
        check("i32.const -4").await,
        Err(KitFault::Trap(_))
    ));
}
