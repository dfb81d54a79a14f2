//! Where a guest's fuel goes: runs a module instrumented by `instrument.py` under wasmi, with
//! fuel metering configured as Wisp configures it, and prints for each guest function the fuel
//! spent in its own code (self), in it and its callees (total), and its calls.
//!
//! ```text
//! fuel-profile OUT.wasm OUT.names [--env K=V]... [--stdin FILE] [--top N]
//! ```
//!
//! Without `--env`, the guest gets the environment of a `GET /bench/trivial` through Wisp's
//! front end. Only the WASI calls the SDK examples make are implemented (args, environ, fd_read,
//! fd_write, clock_time_get, random_get, proc_exit); the others answer ENOSYS.
//!
//! A note on reading it: wasmi charges a block's fuel when the block is entered, for every
//! instruction lexically in it (up to the next `loop` or `if`), whether or not a branch skips
//! them. A function whose body is a large `block` structure (an allocator, a formatter) is
//! charged its whole body on every call, and that charge happens before the enter hook runs, so
//! it shows up as its *caller's* self fuel. `malloc` (a one-line wrapper around `dlmalloc`)
//! shows the charge of `dlmalloc`'s body, for example.

use std::collections::HashMap;

use wasmi::{
    Caller, CompilationMode, Config, Engine, Error, ExternType, Linker, Memory, Module, Store, Val,
};

const WASI: &str = "wasi_snapshot_preview1";
const START_FUEL: u64 = 1 << 40;

#[derive(Default)]
struct Profile {
    env: Vec<String>,
    args: Vec<String>,
    stdin: Vec<u8>,
    stdin_pos: usize,
    stdout: Vec<u8>,
    /// The functions entered and not returned from, with the fuel used when entered.
    stack: Vec<(u32, u64)>,
    self_fuel: HashMap<u32, u64>,
    total_fuel: HashMap<u32, u64>,
    calls: HashMap<u32, u64>,
    /// Fuel used at the last hook.
    last: u64,
    hooks: u64,
}

impl Profile {
    /// Charges the fuel used since the last hook to the function on top of the stack.
    fn charge(&mut self, now: u64) {
        let top = self.stack.last().map_or(u32::MAX, |&(f, _)| f);
        *self.self_fuel.entry(top).or_default() += now - self.last;
        self.last = now;
        self.hooks += 1;
    }
}

fn used(c: &Caller<'_, Profile>) -> u64 {
    START_FUEL - c.get_fuel().expect("fuel metering is on")
}

fn memory(c: &Caller<'_, Profile>) -> Memory {
    c.get_export("memory")
        .and_then(|e| e.into_memory())
        .expect("the guest exports its memory")
}

fn write(c: &mut Caller<'_, Profile>, at: i32, bytes: &[u8]) -> bool {
    let m = memory(c);
    m.write(c, at as u32 as usize, bytes).is_ok()
}

fn read(c: &Caller<'_, Profile>, at: u32, len: u32) -> Option<Vec<u8>> {
    let mut bytes = vec![0; len as usize];
    memory(c).read(c, at as usize, &mut bytes).ok()?;
    Some(bytes)
}

/// The iovecs at `iovs`: (pointer, length) pairs.
fn iovecs(c: &Caller<'_, Profile>, iovs: i32, n: i32) -> Option<Vec<(u32, u32)>> {
    let raw = read(c, iovs as u32, n as u32 * 8)?;
    Some(
        raw.chunks_exact(8)
            .map(|v| {
                let word = |i: usize| u32::from_le_bytes(v[i..i + 4].try_into().unwrap());
                (word(0), word(4))
            })
            .collect(),
    )
}

fn sizes(c: &mut Caller<'_, Profile>, list: Vec<String>, count: i32, size: i32) -> i32 {
    let bytes: usize = list.iter().map(|s| s.len() + 1).sum();
    let ok = write(c, count, &(list.len() as u32).to_le_bytes())
        && write(c, size, &(bytes as u32).to_le_bytes());
    if ok { 0 } else { 21 }
}

fn strings(c: &mut Caller<'_, Profile>, list: Vec<String>, ptrs: i32, buf: i32) -> i32 {
    let mut at = buf as u32;
    for (i, s) in list.iter().enumerate() {
        let mut z = s.clone().into_bytes();
        z.push(0);
        if !write(c, ptrs + 4 * i as i32, &at.to_le_bytes()) || !write(c, at as i32, &z) {
            return 21;
        }
        at += z.len() as u32;
    }
    0
}

fn linker(engine: &Engine, module: &Module) -> Linker<Profile> {
    let mut l = Linker::<Profile>::new(engine);
    l.func_wrap("prof", "enter", |mut c: Caller<'_, Profile>, k: i32| {
        let now = used(&c);
        let p = c.data_mut();
        p.charge(now);
        p.stack.push((k as u32, now));
        *p.calls.entry(k as u32).or_default() += 1;
    })
    .unwrap();
    l.func_wrap("prof", "exit", |mut c: Caller<'_, Profile>, k: i32| {
        let now = used(&c);
        let p = c.data_mut();
        p.charge(now);
        // Pops to `k`: a missed exit (a branch out of the function) leaves no stale frame.
        if p.stack.iter().any(|&(f, _)| f == k as u32) {
            while let Some((f, at)) = p.stack.pop() {
                if f == k as u32 {
                    // Recursion: only the outermost activation adds to the total.
                    if !p.stack.iter().any(|&(g, _)| g == f) {
                        *p.total_fuel.entry(f).or_default() += now - at;
                    }
                    break;
                }
            }
        }
    })
    .unwrap();
    l.func_wrap(
        WASI,
        "args_sizes_get",
        |mut c: Caller<'_, Profile>, n: i32, s: i32| {
            let list = c.data().args.clone();
            sizes(&mut c, list, n, s)
        },
    )
    .unwrap();
    l.func_wrap(
        WASI,
        "args_get",
        |mut c: Caller<'_, Profile>, p: i32, b: i32| {
            let list = c.data().args.clone();
            strings(&mut c, list, p, b)
        },
    )
    .unwrap();
    l.func_wrap(
        WASI,
        "environ_sizes_get",
        |mut c: Caller<'_, Profile>, n: i32, s: i32| {
            let list = c.data().env.clone();
            sizes(&mut c, list, n, s)
        },
    )
    .unwrap();
    l.func_wrap(
        WASI,
        "environ_get",
        |mut c: Caller<'_, Profile>, p: i32, b: i32| {
            let list = c.data().env.clone();
            strings(&mut c, list, p, b)
        },
    )
    .unwrap();
    l.func_wrap(
        WASI,
        "fd_write",
        |mut c: Caller<'_, Profile>, fd: i32, iovs: i32, n: i32, written: i32| -> i32 {
            let Some(iovs) = iovecs(&c, iovs, n) else {
                return 21;
            };
            let mut total = 0u32;
            for (at, len) in iovs {
                let Some(bytes) = read(&c, at, len) else {
                    return 21;
                };
                if fd == 1 {
                    c.data_mut().stdout.extend_from_slice(&bytes);
                }
                total += len;
            }
            if write(&mut c, written, &total.to_le_bytes()) {
                0
            } else {
                21
            }
        },
    )
    .unwrap();
    l.func_wrap(
        WASI,
        "fd_read",
        |mut c: Caller<'_, Profile>, _fd: i32, iovs: i32, n: i32, nread: i32| -> i32 {
            let Some(iovs) = iovecs(&c, iovs, n) else {
                return 21;
            };
            let mut total = 0u32;
            for (at, len) in iovs {
                let p = c.data();
                let take = (len as usize).min(p.stdin.len() - p.stdin_pos);
                let chunk = p.stdin[p.stdin_pos..p.stdin_pos + take].to_vec();
                c.data_mut().stdin_pos += take;
                if !write(&mut c, at as i32, &chunk) {
                    return 21;
                }
                total += take as u32;
            }
            if write(&mut c, nread, &total.to_le_bytes()) {
                0
            } else {
                21
            }
        },
    )
    .unwrap();
    l.func_wrap(
        WASI,
        "clock_time_get",
        |mut c: Caller<'_, Profile>, _id: i32, _precision: i64, out: i32| -> i32 {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos() as u64;
            if write(&mut c, out, &now.to_le_bytes()) {
                0
            } else {
                21
            }
        },
    )
    .unwrap();
    l.func_wrap(
        WASI,
        "random_get",
        |mut c: Caller<'_, Profile>, at: i32, len: i32| -> i32 {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            if write(&mut c, at, &bytes) { 0 } else { 21 }
        },
    )
    .unwrap();
    l.func_wrap(
        WASI,
        "proc_exit",
        |_c: Caller<'_, Profile>, code: i32| -> Result<(), Error> { Err(Error::i32_exit(code)) },
    )
    .unwrap();
    let done = [
        "args_sizes_get",
        "args_get",
        "environ_sizes_get",
        "environ_get",
        "fd_write",
        "fd_read",
        "clock_time_get",
        "random_get",
        "proc_exit",
    ];
    for import in module.imports() {
        if import.module() != WASI || done.contains(&import.name()) {
            continue;
        }
        let ExternType::Func(ty) = import.ty() else {
            continue;
        };
        let results: Vec<_> = ty.results().to_vec();
        l.func_new(WASI, import.name(), ty.clone(), move |_c, _params, out| {
            for (v, t) in out.iter_mut().zip(&results) {
                *v = Val::default_for_ty(*t);
            }
            if let Some(v) = out.first_mut() {
                *v = Val::I32(52); // ENOSYS
            }
            Ok(())
        })
        .unwrap();
    }
    l
}

/// The name, shortened from the front to fit a line (`instrument.py` demangled it).
fn readable(name: &str) -> String {
    let count = name.chars().count();
    if count <= 100 {
        return name.to_string();
    }
    let tail: String = name.chars().skip(count - 99).collect();
    format!("…{tail}")
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(wasm), Some(names)) = (args.next(), args.next()) else {
        eprintln!("usage: fuel-profile OUT.wasm OUT.names [--env K=V]... [--stdin FILE] [--top N]");
        std::process::exit(2);
    };
    let wasm = std::fs::read(&wasm).expect("read the module");
    let names: HashMap<u32, String> = std::fs::read_to_string(&names)
        .expect("read the names")
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .filter_map(|(k, n)| Some((k.parse().ok()?, n.to_string())))
        .collect();
    let mut profile = Profile {
        args: vec!["/bench/trivial".into()],
        ..Profile::default()
    };
    let mut top = 30;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--env" => profile.env.push(args.next().expect("--env K=V")),
            "--stdin" => profile.stdin = std::fs::read(args.next().expect("--stdin FILE")).unwrap(),
            "--top" => top = args.next().and_then(|n| n.parse().ok()).expect("--top N"),
            other => panic!("unexpected argument {other}"),
        }
    }
    if profile.env.is_empty() {
        profile.env = [
            "SERVER_SOFTWARE=wisp/0.1.0",
            "GATEWAY_INTERFACE=CGI/1.1",
            "SERVER_PROTOCOL=HTTP/1.1",
            "SERVER_NAME=127.0.0.1",
            "SERVER_PORT=8080",
            "REMOTE_ADDR=127.0.0.1",
            "REMOTE_HOST=127.0.0.1",
            "REQUEST_METHOD=GET",
            "SCRIPT_NAME=/bench/trivial",
            "PATH_INFO=",
            "PATH_TRANSLATED=",
            "X_RAW_PATH_INFO=",
            "QUERY_STRING=",
            "X_MATCHED_ROUTE=/bench/trivial",
            "X_FULL_URL=http://127.0.0.1:8080/bench/trivial",
            "WISP_FUNCTION=trivial",
            "CONTENT_LENGTH=0",
            "HTTP_HOST=127.0.0.1:8080",
        ]
        .map(String::from)
        .to_vec();
    }
    // Fuel as Wisp charges it: Wisp translates lazily but charges translation nothing, which
    // is what eager compilation charges a run.
    let mut config = Config::default();
    config
        .consume_fuel(true)
        .compilation_mode(CompilationMode::Eager);
    let engine = Engine::new(&config);
    let module = Module::new(&engine, &wasm).expect("a valid module");
    let linker = linker(&engine, &module);
    let mut store = Store::new(&engine, profile);
    store.set_fuel(START_FUEL).unwrap();
    let instance = linker
        .instantiate_and_start(&mut store, &module)
        .expect("instantiate");
    let start = instance
        .get_typed_func::<(), ()>(&store, "_start")
        .expect("a WASI command");
    let result = start.call(&mut store, ());
    let fuel = START_FUEL - store.get_fuel().unwrap();
    let p = store.data();
    let exit = match result {
        Ok(()) => "returned".to_string(),
        Err(e) => match e.i32_exit_status() {
            Some(code) => format!("exit {code}"),
            None => format!("trap: {e}"),
        },
    };
    println!(
        "fuel {fuel} ({} of it the profile's own hooks), {exit}, stdout {} bytes:",
        2 * p.hooks,
        p.stdout.len()
    );
    println!("{}", String::from_utf8_lossy(&p.stdout).escape_debug());
    println!();
    println!(
        "{:>9} {:>6} {:>9} {:>7} {:>9}  function",
        "self", "%", "total", "calls", "per call"
    );
    let mut rows: Vec<_> = p
        .self_fuel
        .iter()
        .filter(|(k, _)| **k != u32::MAX)
        .collect();
    rows.sort_by_key(|(_, fuel)| std::cmp::Reverse(**fuel));
    for (k, own) in rows.into_iter().take(top) {
        let calls = p.calls.get(k).copied().unwrap_or(0);
        println!(
            "{:>9} {:>5.1}% {:>9} {:>7} {:>9}  {}",
            own,
            100.0 * *own as f64 / fuel as f64,
            p.total_fuel.get(k).copied().unwrap_or(0),
            calls,
            own / calls.max(1),
            readable(names.get(k).map_or("?", String::as_str))
        );
    }
}
