//! Instance recycling: an invocation reuses an instance a finished one left, restored to
//! exactly what a fresh instance is.
//!
//! Instantiating costs more than most functions' own work: wasmi allocates an entity for each of
//! the module's functions, resolves its imports, zeroes its linear memory and copies its data
//! segments, every time. An instance's state, though, is only its linear memory, its mutable
//! globals and its tables: restore those to the image they had right after instantiation and
//! nothing of one invocation can be seen by the next. So:
//!
//! - at deploy, [`prepare`] checks that the module can only change its memory and its globals
//!   (no instruction that writes a table or drops or reads a passive segment), and rewrites it to
//!   export every mutable global, which wasmi otherwise gives no handle on;
//! - at compile, the trial instantiation gives the image: the memory and the globals' values;
//! - when an invocation ends normally with its memory still at the image's size, the pages that
//!   differ from the image are copied back, the globals are set back, and the instance waits for
//!   the next invocation of its module. A memory that grew, a trap or a limit: the instance goes.
//!
//! `runtime/src/engine/recycle_tests.rs` runs random invocations through fresh and recycled
//! instances and compares everything they show.

use wasmparser::{Operator, Parser, Payload};

/// The name of the export a rewritten module gives mutable global `index`. Exports of this
/// shape are refused in modules as uploaded, so they cannot clash.
pub(crate) fn global_export(index: u32) -> String {
    format!("{RESERVED}{index}")
}

const RESERVED: &str = "wisp:global:";

/// A module ready to be recycled: rewritten to export its mutable globals, under these names.
pub(crate) struct Prepared {
    pub wasm: Vec<u8>,
    pub globals: Vec<String>,
}

/// Checks whether instances of `wasm` can be recycled, and rewrites it so they can; `None` if
/// they cannot (the module stays as it is, and each invocation gets a fresh instance).
pub(crate) fn prepare(wasm: &[u8]) -> Option<Prepared> {
    let mut sections: Vec<(u8, std::ops::Range<usize>)> = Vec::new();
    let mut export_section = None;
    let mut mutable = Vec::new();
    let mut globals = 0u32;
    for payload in Parser::new(0).parse_all(wasm) {
        let payload = payload.ok()?;
        match &payload {
            Payload::ImportSection(imports) => {
                // Only functions are imported (checked at compile): global indices start at 0.
                for import in imports.clone() {
                    if !matches!(import.ok()?.ty, wasmparser::TypeRef::Func(_)) {
                        return None;
                    }
                }
            }
            Payload::GlobalSection(reader) => {
                for global in reader.clone() {
                    if global.ok()?.ty.mutable {
                        mutable.push(globals);
                    }
                    globals += 1;
                }
            }
            Payload::ExportSection(reader) => {
                for export in reader.clone() {
                    if export.ok()?.name.starts_with(RESERVED) {
                        return None;
                    }
                }
                export_section = Some(sections.len());
            }
            Payload::MemorySection(reader) => {
                for memory in reader.clone() {
                    if memory.ok()?.shared {
                        return None;
                    }
                }
            }
            Payload::CodeSectionEntry(body) => {
                let mut operators = body.get_operators_reader().ok()?;
                while !operators.eof() {
                    if changes_more_than_memory(&operators.read().ok()?) {
                        return None;
                    }
                }
            }
            _ => {}
        }
        // Custom sections are left out: wasmi ignores them.
        if let Some((id, range)) = payload.as_section()
            && id != 0
        {
            sections.push((id, range));
        }
    }
    let export_section = export_section?;
    let names: Vec<String> = mutable.iter().map(|&i| global_export(i)).collect();
    let mut out = Vec::with_capacity(wasm.len() + 32 * names.len());
    out.extend_from_slice(&wasm[..8]);
    for (i, (id, range)) in sections.iter().enumerate() {
        let contents = &wasm[range.clone()];
        if i != export_section {
            section(&mut out, *id, contents);
            continue;
        }
        let (count, rest) = leb(contents)?;
        let mut grown = Vec::with_capacity(contents.len() + 32 * names.len());
        uleb(&mut grown, count + names.len() as u32);
        grown.extend_from_slice(rest);
        for (name, &index) in names.iter().zip(&mutable) {
            uleb(&mut grown, name.len() as u32);
            grown.extend_from_slice(name.as_bytes());
            grown.push(0x03); // a global
            uleb(&mut grown, index);
        }
        section(&mut out, *id, &grown);
    }
    Some(Prepared {
        wasm: out,
        globals: names,
    })
}

/// Whether an instruction can change an instance's state beyond its memory and globals: write
/// a table, or drop or read a passive segment (whose dropped state a restore cannot undo).
fn changes_more_than_memory(op: &Operator) -> bool {
    matches!(
        op,
        Operator::TableSet { .. }
            | Operator::TableGrow { .. }
            | Operator::TableFill { .. }
            | Operator::TableCopy { .. }
            | Operator::TableInit { .. }
            | Operator::ElemDrop { .. }
            | Operator::MemoryInit { .. }
            | Operator::DataDrop { .. }
    )
}

fn section(out: &mut Vec<u8>, id: u8, contents: &[u8]) {
    out.push(id);
    uleb(out, contents.len() as u32);
    out.extend_from_slice(contents);
}

fn uleb(out: &mut Vec<u8>, mut value: u32) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// A LEB128 `u32` at the start of `bytes`, and the rest.
fn leb(bytes: &[u8]) -> Option<(u32, &[u8])> {
    let mut value = 0u32;
    for (i, &byte) in bytes.iter().enumerate().take(5) {
        value |= u32::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((value, &bytes[i + 1..]));
        }
    }
    None
}
