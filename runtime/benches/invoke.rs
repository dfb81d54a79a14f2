//! Per-invocation cost: compile once, then instantiate + run `_start` again and again through the
//! library API (`Module::compile`, `run_here`), timing each iteration with `Instant`.
//!
//! ```sh
//! cargo bench --bench invoke                      # the example modules and generated ones
//! cargo bench --bench invoke -- --quick           # fewer iterations
//! cargo bench --bench invoke -- NAME=PATH...      # these modules (absolute paths: cargo runs
//!                                                 # benches in runtime/), and the generated ones
//! cargo bench --bench invoke -- --emit DIR        # only write the generated modules to DIR
//! cargo bench --bench invoke -- --iters 1000 --no-generated trivial=PATH   # for callgrind
//! ```
//!
//! For every module it prints one line:
//!
//! ```text
//! invoke NAME size=BYTES pages=N compile_ms=C min_us=X median_us=Y p99_us=Z sched_us=S
//!        fuel=F mem_kib=M iters=I
//! ```
//!
//! `min_us`, `median_us` and `p99_us` time `run_here` (instantiate + run on this thread).
//! `sched_us` is the median through the server's `Scheduler`, on this thread as a connection's
//! task runs it: instantiate + run plus admission and the future around it.
//!
//! The generated modules (hand-written WAT, via the `wat` dev-dependency) separate what an
//! invocation pays for: `wat-1page` is the floor (one `fd_write`, one page of memory),
//! `wat-17pages` the same with rustc's default 17 pages, `wat-big-data` a module with a 4 MiB
//! data segment, and `wat-big-code` one with 100,000 small functions (about 3.5 MB).
//! tests/bench/run.sh also deploys the last two to measure cold starts.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use wisp::engine::{Invocation, Limits, Module, Scheduler, SchedulerConfig, run_here};

const WRITE_OK: &str = r#"
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (data (i32.const 1024) "Content-Type: text/plain\n\nok")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 1024))
    (i32.store (i32.const 4) (i32.const 28))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))))
"#;

/// A WASI command that writes a CGI `ok` with one `fd_write`, with `pages` pages of memory and
/// `extra` more module fields.
fn ok_module(pages: u32, extra: &str) -> String {
    format!("(module {WRITE_OK} (memory (export \"memory\") {pages}) {extra})")
}

/// The generated modules, by name.
fn generated() -> Vec<(String, Vec<u8>)> {
    let parse = |wat: String| wat::parse_str(wat).expect("the generated WAT is valid");
    // 4 MiB of data (not all zeros, so no one can skip it), after the first page.
    let data_len = 4 << 20;
    let mut data = String::with_capacity(data_len * 3);
    for i in 0..data_len {
        data.push_str(&format!("\\{:02x}", (i * 7 + 1) as u8));
    }
    let big_data = ok_module(
        (65536 + data_len as u32).div_ceil(65536) + 1,
        &format!("(data (i32.const 65536) \"{data}\")"),
    );
    // 100,000 small functions that are never called: code to validate and translate at deploy,
    // and function entities to set up at every instantiation.
    let mut funcs = String::new();
    for i in 0..100_000u32 {
        funcs.push_str(&format!(
            "(func (param i32) (result i32) local.get 0 i32.const {i} i32.add i32.const {m} \
             i32.mul i32.const {x} i32.xor local.get 0 i32.const 3 i32.shl i32.add \
             i32.const 1234567 i32.rem_u)\n",
            m = i | 1,
            x = i.wrapping_mul(2_654_435_761)
        ));
    }
    vec![
        ("wat-1page".into(), parse(ok_module(1, ""))),
        ("wat-17pages".into(), parse(ok_module(17, ""))),
        ("wat-big-data".into(), parse(big_data)),
        ("wat-big-code".into(), parse(ok_module(1, &funcs))),
    ]
}

/// The environment of a typical `GET` through the front end, as `wagi::invocation` builds it.
fn request() -> Invocation {
    let env = [
        "REQUEST_METHOD=GET",
        "PATH_INFO=",
        "X_RAW_PATH_INFO=",
        "SCRIPT_NAME=/bench/trivial",
        "QUERY_STRING=",
        "SERVER_NAME=127.0.0.1",
        "SERVER_PORT=8080",
        "SERVER_PROTOCOL=HTTP/1.1",
        "GATEWAY_INTERFACE=CGI/1.1",
        "SERVER_SOFTWARE=wisp",
        "REMOTE_ADDR=127.0.0.1",
        "REMOTE_HOST=127.0.0.1",
        "X_FULL_URL=http://127.0.0.1:8080/bench/trivial",
        "X_MATCHED_ROUTE=/bench/trivial",
        "WISP_FUNCTION=trivial",
        "CONTENT_LENGTH=0",
        "HTTP_HOST=127.0.0.1:8080",
    ];
    Invocation {
        args: vec!["/bench/trivial".into()],
        env: env.iter().map(|s| s.to_string()).collect(),
        stdin: Vec::new(),
        ..Default::default()
    }
}

/// The initial pages of the module's memory, read from its memory section.
fn initial_pages(wasm: &[u8]) -> Option<u64> {
    let mut pos = 8;
    let leb = |pos: &mut usize| -> Option<u64> {
        let (mut value, mut shift) = (0u64, 0);
        loop {
            let byte = *wasm.get(*pos)?;
            *pos += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Some(value);
            }
            shift += 7;
        }
    };
    while pos < wasm.len() {
        let id = wasm[pos];
        pos += 1;
        let len = leb(&mut pos)? as usize;
        if id == 5 {
            let mut p = pos;
            let _count = leb(&mut p)?;
            let _flags = leb(&mut p)?;
            return leb(&mut p);
        }
        pos += len;
    }
    None
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// How long to measure each module.
#[derive(Clone, Copy)]
struct Plan {
    quick: bool,
    /// Exactly this many timed iterations, no warm-up (for `valgrind --tool=callgrind`).
    iters: Option<usize>,
}

fn bench(name: &str, wasm: &[u8], plan: Plan) {
    let quick = plan.quick || plan.iters.is_some();
    let compiles = if quick { 3 } else { 7 };
    let mut compile_times = Vec::new();
    let mut module = None;
    for _ in 0..compiles {
        let start = Instant::now();
        let compiled = Module::compile(wasm, Limits::default());
        compile_times.push(start.elapsed());
        match compiled {
            Ok(m) => module = Some(m),
            Err(e) => {
                println!(
                    "invoke {name} error=compile:{}",
                    e.to_string().replace(' ', "_")
                );
                return;
            }
        }
    }
    compile_times.sort();
    let module: Arc<Module> = module.expect("compiled at least once");
    let invocation = request();
    let first = run_here(module.clone(), invocation.clone());
    if let Err(stop) = &first.result {
        println!(
            "invoke {name} error=run:{}",
            stop.to_string().replace(' ', "_")
        );
        return;
    }
    // Big modules take milliseconds per run: give each module about the same time budget.
    let budget = Duration::from_millis(if quick { 400 } else { 2000 });
    let started = Instant::now();
    let mut warmup = 0;
    while plan.iters.is_none() && warmup < 50 && started.elapsed() < budget / 10 {
        run_here(module.clone(), invocation.clone());
        warmup += 1;
    }
    let mut times = Vec::new();
    let started = Instant::now();
    let more = |n: usize| match plan.iters {
        Some(iters) => n < iters,
        None => n < 200_000 && (n < 20 || started.elapsed() < budget),
    };
    while more(times.len()) {
        // The clone of the request is part of what the server pays too.
        let invocation = invocation.clone();
        let start = Instant::now();
        let outcome = run_here(module.clone(), invocation);
        let took = start.elapsed();
        times.push(took);
        debug_assert!(outcome.result.is_ok());
    }
    times.sort();
    // The same through the server's scheduler, on this thread as a connection's task runs it.
    let scheduler = Scheduler::new(SchedulerConfig::default());
    let mut scheduled = Vec::new();
    let started = Instant::now();
    while plan.iters.is_none()
        && scheduled.len() < times.len().min(20_000)
        && (scheduled.len() < 20 || started.elapsed() < budget / 2)
    {
        let invocation = invocation.clone();
        let start = Instant::now();
        let outcome = smol::block_on(scheduler.run(module.clone(), invocation));
        scheduled.push(start.elapsed());
        debug_assert!(outcome.is_ok_and(|o| o.result.is_ok()));
    }
    scheduled.sort();
    println!(
        "invoke {name} size={} pages={} compile_ms={:.2} min_us={:.1} median_us={:.1} \
         p99_us={:.1} sched_us={:.1} fuel={} mem_kib={} iters={}",
        wasm.len(),
        initial_pages(wasm).map_or("?".into(), |p| p.to_string()),
        compile_times[compile_times.len() / 2].as_secs_f64() * 1e3,
        us(times[0]),
        us(percentile(&times, 0.5)),
        us(percentile(&times, 0.99)),
        scheduled.get(scheduled.len() / 2).map_or(0.0, |d| us(*d)),
        first.fuel_used,
        first.memory_bytes / 1024,
        times.len(),
    );
}

fn main() {
    let mut quick = false;
    let mut iters = None;
    let mut with_generated = true;
    let mut emit = None;
    let mut modules: Vec<(String, PathBuf)> = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            // cargo bench passes --bench to every bench target.
            "--bench" => {}
            "-h" | "--help" => {
                println!(
                    "usage: cargo bench --bench invoke -- [--quick] [--iters N] [--no-generated] \
                     [NAME=ABSOLUTE_PATH.wasm]...\n       cargo bench --bench invoke -- --emit DIR"
                );
                return;
            }
            "--quick" => quick = true,
            "--no-generated" => with_generated = false,
            "--iters" => iters = args.next().and_then(|n| n.parse().ok()),
            "--emit" => emit = Some(PathBuf::from(args.next().expect("--emit DIR"))),
            _ => match arg.split_once('=') {
                Some((name, path)) => modules.push((name.into(), path.into())),
                None => panic!("unexpected argument `{arg}` (NAME=PATH, --quick or --emit DIR)"),
            },
        }
    }
    let plan = Plan { quick, iters };
    let generated = if with_generated || emit.is_some() {
        generated()
    } else {
        Vec::new()
    };
    if let Some(dir) = emit {
        std::fs::create_dir_all(&dir).expect("create the --emit folder");
        for (name, wasm) in &generated {
            let path = dir.join(format!("{name}.wasm"));
            std::fs::write(&path, wasm).expect("write a generated module");
            println!("{:>9}  {}", wasm.len(), path.display());
        }
        return;
    }
    if modules.is_empty() {
        let dir =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../functions/target/wasm32-wasip1/release");
        for name in ["trivial", "date", "hello-c"] {
            let path = dir.join(format!("{name}.wasm"));
            if path.exists() {
                modules.push((name.into(), path));
            }
        }
    }
    for (name, path) in &modules {
        match std::fs::read(path) {
            Ok(wasm) => bench(name, &wasm, plan),
            Err(e) => println!("invoke {name} error=read:{}", e.kind()),
        }
    }
    for (name, wasm) in &generated {
        bench(name, wasm, plan);
    }
}
