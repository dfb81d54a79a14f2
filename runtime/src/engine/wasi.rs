//! The WASI preview1 subset a stateless function needs, written in-house so that a context
//! costs a few vectors rather than a filesystem layer (DESIGN.md, "Engine facts").
//!
//! Provided: args, environ, stdin (`fd_read` on 0), stdout and stderr (`fd_write` on 1 and 2),
//! clocks, random, `proc_exit`, `sched_yield`, `poll_oneoff` for clocks. There are no preopened
//! directories and no sockets: every other preview1 call exists, so that modules built by any
//! WASI toolchain link, and fails with `EBADF` (no such descriptor) or `ENOTSUP`.
//!
//! Every guest pointer and length is checked against the guest's memory; a bad one gets
//! `EFAULT`, never a host panic.

use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use wasmi::errors::LinkerError;
use wasmi::{Caller, Error, FuncType, Val, ValType};

use super::Limit;
use super::host::{HostState, HostStop, Imports, guest_range};

const MODULE: &str = "wasi_snapshot_preview1";

type Errno = i32;
const SUCCESS: Errno = 0;
const EBADF: Errno = 8;
const EFAULT: Errno = 21;
const EINVAL: Errno = 28;
const EIO: Errno = 29;
const ENOSYS: Errno = 52;
const ENOTDIR: Errno = 54;
const ENOTSOCK: Errno = 57;
const ENOTSUP: Errno = 58;
const ESPIPE: Errno = 70;

const FILETYPE_CHARACTER_DEVICE: u8 = 2;
const RIGHT_FD_READ: u64 = 1 << 1;
const RIGHT_FD_WRITE: u64 = 1 << 6;
const RIGHT_POLL_FD_READWRITE: u64 = 1 << 27;
const FDFLAGS_APPEND: u16 = 1;

/// Adds the preview1 subset to `linker`.
pub(crate) fn add_to_linker(linker: &mut Imports) -> Result<(), LinkerError> {
    linker.func_wrap(
        MODULE,
        "args_sizes_get",
        |mut c: Caller<'_, HostState>, count: i32, size: i32| {
            errno(sizes_get(&mut c, |s| &s.args, count, size))
        },
    )?;
    linker.func_wrap(
        MODULE,
        "args_get",
        |mut c: Caller<'_, HostState>, ptrs: i32, buf: i32| {
            errno(strings_get(&mut c, |s| &s.args, ptrs, buf))
        },
    )?;
    linker.func_wrap(
        MODULE,
        "environ_sizes_get",
        |mut c: Caller<'_, HostState>, n: i32, size: i32| {
            errno(sizes_get(&mut c, |s| &s.env, n, size))
        },
    )?;
    linker.func_wrap(
        MODULE,
        "environ_get",
        |mut c: Caller<'_, HostState>, ptrs: i32, buf: i32| {
            errno(strings_get(&mut c, |s| &s.env, ptrs, buf))
        },
    )?;
    linker.func_wrap(MODULE, "fd_read", fd_read)?;
    linker.func_wrap(MODULE, "fd_write", fd_write)?;
    linker.func_wrap(
        MODULE,
        "fd_fdstat_get",
        |mut c: Caller<'_, HostState>, fd: i32, out: i32| errno(fdstat_get(&mut c, fd, out)),
    )?;
    linker.func_wrap(
        MODULE,
        "fd_filestat_get",
        |mut c: Caller<'_, HostState>, fd: i32, out: i32| errno(filestat_get(&mut c, fd, out)),
    )?;
    linker.func_wrap(MODULE, "fd_close", |fd: i32| {
        if is_stdio(fd) { SUCCESS } else { EBADF }
    })?;
    linker.func_wrap(MODULE, "fd_prestat_get", |_: i32, _: i32| EBADF)?;
    linker.func_wrap(MODULE, "fd_prestat_dir_name", |_: i32, _: i32, _: i32| {
        EBADF
    })?;
    linker.func_wrap(
        MODULE,
        "clock_res_get",
        |mut c: Caller<'_, HostState>, id: i32, out: i32| errno(clock_res_get(&mut c, id, out)),
    )?;
    linker.func_wrap(
        MODULE,
        "clock_time_get",
        |mut c: Caller<'_, HostState>, id: i32, _precision: i64, out: i32| {
            errno(clock_time_get(&mut c, id, out))
        },
    )?;
    linker.func_wrap(
        MODULE,
        "random_get",
        |mut c: Caller<'_, HostState>, buf: i32, len: i32| errno(random_get(&mut c, buf, len)),
    )?;
    linker.func_wrap(MODULE, "proc_exit", |code: i32| -> Result<(), Error> {
        Err(Error::i32_exit(code))
    })?;
    linker.func_wrap(MODULE, "sched_yield", || SUCCESS)?;
    linker.func_wrap(MODULE, "poll_oneoff", poll_oneoff)?;
    for (name, params, stdio_errno) in UNSUPPORTED {
        let ty = FuncType::new(params.iter().copied(), [ValType::I32]);
        let stdio_errno = *stdio_errno;
        linker.func_new(MODULE, name, ty, move |_, args, results| {
            let fd = args.first().and_then(Val::i32).unwrap_or(-1);
            let code = if is_stdio(fd) { stdio_errno } else { EBADF };
            results[0] = Val::I32(code);
            Ok(())
        })?;
    }
    Ok(())
}

use ValType::{I32, I64};

/// The rest of preview1: present so that modules link, failing as a sandbox without files or
/// sockets must. The errno is for the stdio descriptors; any other descriptor gets `EBADF`.
const UNSUPPORTED: &[(&str, &[ValType], Errno)] = &[
    ("fd_advise", &[I32, I64, I64, I32], ESPIPE),
    ("fd_allocate", &[I32, I64, I64], ENOTSUP),
    ("fd_datasync", &[I32], EINVAL),
    ("fd_fdstat_set_flags", &[I32, I32], ENOTSUP),
    ("fd_fdstat_set_rights", &[I32, I64, I64], ENOTSUP),
    ("fd_filestat_set_size", &[I32, I64], EINVAL),
    ("fd_filestat_set_times", &[I32, I64, I64, I32], ENOTSUP),
    ("fd_pread", &[I32, I32, I32, I64, I32], ESPIPE),
    ("fd_pwrite", &[I32, I32, I32, I64, I32], ESPIPE),
    ("fd_readdir", &[I32, I32, I32, I64, I32], ENOTDIR),
    ("fd_renumber", &[I32, I32], ENOTSUP),
    ("fd_seek", &[I32, I64, I32, I32], ESPIPE),
    ("fd_sync", &[I32], EINVAL),
    ("fd_tell", &[I32, I32], ESPIPE),
    ("path_create_directory", &[I32, I32, I32], ENOTDIR),
    ("path_filestat_get", &[I32, I32, I32, I32, I32], ENOTDIR),
    (
        "path_filestat_set_times",
        &[I32, I32, I32, I32, I64, I64, I32],
        ENOTDIR,
    ),
    ("path_link", &[I32, I32, I32, I32, I32, I32, I32], ENOTDIR),
    (
        "path_open",
        &[I32, I32, I32, I32, I32, I64, I64, I32, I32],
        ENOTDIR,
    ),
    ("path_readlink", &[I32, I32, I32, I32, I32, I32], ENOTDIR),
    ("path_remove_directory", &[I32, I32, I32], ENOTDIR),
    ("path_rename", &[I32, I32, I32, I32, I32, I32], ENOTDIR),
    ("path_symlink", &[I32, I32, I32, I32, I32], EBADF),
    ("path_unlink_file", &[I32, I32, I32], ENOTDIR),
    ("proc_raise", &[I32], ENOSYS),
    ("sock_accept", &[I32, I32, I32], ENOTSOCK),
    ("sock_recv", &[I32, I32, I32, I32, I32, I32], ENOTSOCK),
    ("sock_send", &[I32, I32, I32, I32, I32], ENOTSOCK),
    ("sock_shutdown", &[I32, I32], ENOTSOCK),
];

/// The names of every function this module provides, for checking a module's imports.
pub(crate) fn provides(name: &str) -> bool {
    const IMPLEMENTED: &[&str] = &[
        "args_sizes_get",
        "args_get",
        "environ_sizes_get",
        "environ_get",
        "fd_read",
        "fd_write",
        "fd_fdstat_get",
        "fd_filestat_get",
        "fd_close",
        "fd_prestat_get",
        "fd_prestat_dir_name",
        "clock_res_get",
        "clock_time_get",
        "random_get",
        "proc_exit",
        "sched_yield",
        "poll_oneoff",
    ];
    IMPLEMENTED.contains(&name) || UNSUPPORTED.iter().any(|(n, _, _)| *n == name)
}

pub(crate) const MODULE_NAME: &str = MODULE;

fn is_stdio(fd: i32) -> bool {
    (0..=2).contains(&fd)
}

fn errno(result: Result<(), Errno>) -> Errno {
    result.err().unwrap_or(SUCCESS)
}

/// The guest's memory and the host state, borrowed together.
fn split<'a>(
    caller: &'a mut Caller<'_, HostState>,
) -> Result<(&'a mut [u8], &'a mut HostState), Errno> {
    let memory = caller.data().memory.ok_or(EFAULT)?;
    Ok(memory.data_and_store_mut(caller))
}

// INVARIANT: every access below goes through `range` (`guest_range`, as the wisp imports do).
fn range(mem: &[u8], ptr: i32, len: usize) -> Result<std::ops::Range<usize>, Errno> {
    guest_range(mem.len(), ptr, len).ok_or(EFAULT)
}

fn bytes_mut(mem: &mut [u8], ptr: i32, len: usize) -> Result<&mut [u8], Errno> {
    let r = range(mem, ptr, len)?;
    Ok(&mut mem[r])
}

fn write_u32(mem: &mut [u8], ptr: i32, value: u32) -> Result<(), Errno> {
    bytes_mut(mem, ptr, 4)?.copy_from_slice(&value.to_le_bytes());
    Ok(())
}

fn write_u64(mem: &mut [u8], ptr: i32, value: u64) -> Result<(), Errno> {
    bytes_mut(mem, ptr, 8)?.copy_from_slice(&value.to_le_bytes());
    Ok(())
}

/// The `(ptr, len)` pairs of an iovec array.
fn iovecs(mem: &[u8], iovs: i32, count: i32) -> Result<Vec<(i32, usize)>, Errno> {
    let count = count as u32 as usize;
    let r = range(mem, iovs, count.checked_mul(8).ok_or(EFAULT)?)?;
    Ok(mem[r]
        .chunks_exact(8)
        .map(|v| {
            let ptr = u32::from_le_bytes(v[..4].try_into().expect("4 bytes"));
            let len = u32::from_le_bytes(v[4..].try_into().expect("4 bytes"));
            (ptr as i32, len as usize)
        })
        .collect())
}

fn sizes_get(
    caller: &mut Caller<'_, HostState>,
    list: fn(&HostState) -> &Vec<String>,
    count_ptr: i32,
    size_ptr: i32,
) -> Result<(), Errno> {
    let (mem, state) = split(caller)?;
    let items = list(state);
    let size: usize = items.iter().map(|s| s.len() + 1).sum();
    write_u32(mem, count_ptr, items.len() as u32)?;
    write_u32(mem, size_ptr, size as u32)
}

fn strings_get(
    caller: &mut Caller<'_, HostState>,
    list: fn(&HostState) -> &Vec<String>,
    ptrs: i32,
    buf: i32,
) -> Result<(), Errno> {
    let (mem, state) = split(caller)?;
    let mut at = buf as u32;
    for (i, item) in list(state).iter().enumerate() {
        write_u32(mem, ptrs.wrapping_add(4 * i as i32), at)?;
        let dst = bytes_mut(mem, at as i32, item.len() + 1)?;
        dst[..item.len()].copy_from_slice(item.as_bytes());
        dst[item.len()] = 0;
        at = at.checked_add(item.len() as u32 + 1).ok_or(EFAULT)?;
    }
    Ok(())
}

fn fd_read(
    mut caller: Caller<'_, HostState>,
    fd: i32,
    iovs: i32,
    iovs_len: i32,
    nread: i32,
) -> i32 {
    errno((|| {
        if fd != 0 {
            return Err(EBADF);
        }
        let (mem, state) = split(&mut caller)?;
        if let Some(console) = &state.console {
            // One read, into the first buffer with room, as `readv` on a pipe does.
            let (ptr, len) = iovecs(mem, iovs, iovs_len)?
                .into_iter()
                .find(|&(_, len)| len > 0)
                .unwrap_or((0, 0));
            let n = console.read(bytes_mut(mem, ptr, len)?).map_err(|_| EIO)?;
            return write_u32(mem, nread, n as u32);
        }
        let mut total = 0usize;
        for (ptr, len) in iovecs(mem, iovs, iovs_len)? {
            let rest = &state.stdin[state.stdin_pos..];
            let n = rest.len().min(len);
            bytes_mut(mem, ptr, n)?.copy_from_slice(&rest[..n]);
            state.stdin_pos += n;
            total += n;
            if n < len {
                break;
            }
        }
        write_u32(mem, nread, total as u32)
    })())
}

fn fd_write(
    mut caller: Caller<'_, HostState>,
    fd: i32,
    iovs: i32,
    iovs_len: i32,
    nwritten: i32,
) -> Result<i32, Error> {
    let Ok((mem, state)) = split(&mut caller) else {
        return Ok(EFAULT);
    };
    if let Some(console) = &state.console {
        if fd != 1 && fd != 2 {
            return Ok(EBADF);
        }
        let Ok(vecs) = iovecs(mem, iovs, iovs_len) else {
            return Ok(EFAULT);
        };
        let mut total = 0usize;
        for (ptr, len) in vecs {
            let Ok(r) = range(mem, ptr, len) else {
                return Ok(EFAULT);
            };
            if console.write(fd, &mem[r]).is_err() {
                return Ok(EIO);
            }
            total += len;
        }
        return Ok(match write_u32(mem, nwritten, total as u32) {
            Ok(()) => SUCCESS,
            Err(e) => e,
        });
    }
    let (out, cap, limit) = match fd {
        1 => (
            &mut state.stdout,
            state.stdout_cap,
            Limit::Stdout(state.stdout_cap),
        ),
        2 => (
            &mut state.stderr,
            state.stderr_cap,
            Limit::Stderr(state.stderr_cap),
        ),
        _ => return Ok(EBADF),
    };
    let vecs = match iovecs(mem, iovs, iovs_len) {
        Ok(v) => v,
        Err(e) => return Ok(e),
    };
    let mut total = 0usize;
    for (ptr, len) in vecs {
        let Ok(r) = range(mem, ptr, len) else {
            return Ok(EFAULT);
        };
        if out.len() + len > cap {
            return Err(Error::host(HostStop::Limit(limit)));
        }
        out.extend_from_slice(&mem[r]);
        total += len;
    }
    Ok(errno(write_u32(mem, nwritten, total as u32)))
}

fn fdstat_get(caller: &mut Caller<'_, HostState>, fd: i32, out: i32) -> Result<(), Errno> {
    if !is_stdio(fd) {
        return Err(EBADF);
    }
    let (mem, _) = split(caller)?;
    let (flags, rights) = match fd {
        0 => (0, RIGHT_FD_READ | RIGHT_POLL_FD_READWRITE),
        _ => (FDFLAGS_APPEND, RIGHT_FD_WRITE | RIGHT_POLL_FD_READWRITE),
    };
    let stat = bytes_mut(mem, out, 24)?;
    stat.fill(0);
    stat[0] = FILETYPE_CHARACTER_DEVICE;
    stat[2..4].copy_from_slice(&flags.to_le_bytes());
    stat[8..16].copy_from_slice(&rights.to_le_bytes());
    Ok(())
}

fn filestat_get(caller: &mut Caller<'_, HostState>, fd: i32, out: i32) -> Result<(), Errno> {
    if !is_stdio(fd) {
        return Err(EBADF);
    }
    let (mem, _) = split(caller)?;
    let stat = bytes_mut(mem, out, 64)?;
    stat.fill(0);
    stat[16] = FILETYPE_CHARACTER_DEVICE;
    Ok(())
}

/// The monotonic clock counts from the first time any guest asked, so it fits in a u64.
fn monotonic_origin() -> Instant {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    *ORIGIN.get_or_init(Instant::now)
}

fn now_ns(state: &HostState, id: i32) -> Result<u64, Errno> {
    let ns = match id {
        0 => SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default(),
        1 => monotonic_origin().elapsed(),
        // The invocation's own run time stands in for CPU time: it is what it is billed for.
        2 | 3 => state.started.elapsed(),
        _ => return Err(EINVAL),
    };
    Ok(ns.as_nanos() as u64)
}

fn clock_res_get(caller: &mut Caller<'_, HostState>, id: i32, out: i32) -> Result<(), Errno> {
    if !(0..=3).contains(&id) {
        return Err(EINVAL);
    }
    let (mem, _) = split(caller)?;
    write_u64(mem, out, 1_000)
}

fn clock_time_get(caller: &mut Caller<'_, HostState>, id: i32, out: i32) -> Result<(), Errno> {
    let (mem, state) = split(caller)?;
    let ns = now_ns(state, id)?;
    write_u64(mem, out, ns)
}

fn random_get(caller: &mut Caller<'_, HostState>, buf: i32, len: i32) -> Result<(), Errno> {
    let (mem, _) = split(caller)?;
    let dst = bytes_mut(mem, buf, len as u32 as usize)?;
    getrandom::fill(dst).map_err(|_| 29 /* EIO */)
}

const SUBSCRIPTION_SIZE: usize = 48;
const EVENT_SIZE: usize = 32;
const EVENTTYPE_CLOCK: u8 = 0;
const SUBCLOCKFLAGS_ABSTIME: u16 = 1;

/// Waits on clocks without holding the worker: the call writes its events, then stops the
/// guest with [`HostStop::Sleep`]; the pool resumes it when the time comes. Subscriptions to
/// stdio descriptors are always ready.
fn poll_oneoff(
    mut caller: Caller<'_, HostState>,
    subs: i32,
    events: i32,
    nsubs: i32,
    nevents: i32,
) -> Result<i32, Error> {
    let mut wake = None;
    let result = (|| {
        let nsubs = nsubs as u32 as usize;
        if nsubs == 0 {
            return Err(EINVAL);
        }
        let (mem, state) = split(&mut caller)?;
        let all = range(
            mem,
            subs,
            nsubs.checked_mul(SUBSCRIPTION_SIZE).ok_or(EFAULT)?,
        )?;
        let subscriptions: Vec<[u8; SUBSCRIPTION_SIZE]> = mem[all]
            .chunks_exact(SUBSCRIPTION_SIZE)
            .map(|s| s.try_into().expect("subscription size"))
            .collect();
        let mut out = Vec::new();
        let mut earliest: Option<(Instant, u64)> = None;
        for sub in &subscriptions {
            let userdata = u64::from_le_bytes(sub[0..8].try_into().expect("8 bytes"));
            let tag = sub[8];
            if tag == EVENTTYPE_CLOCK {
                let id = u32::from_le_bytes(sub[16..20].try_into().expect("4 bytes")) as i32;
                let timeout = u64::from_le_bytes(sub[24..32].try_into().expect("8 bytes"));
                let flags = u16::from_le_bytes(sub[40..42].try_into().expect("2 bytes"));
                let relative = if flags & SUBCLOCKFLAGS_ABSTIME != 0 {
                    timeout.saturating_sub(now_ns(state, id)?)
                } else {
                    timeout
                };
                let at = Instant::now() + Duration::from_nanos(relative);
                if earliest.is_none_or(|(t, _)| at < t) {
                    earliest = Some((at, userdata));
                }
            } else {
                // fd_read (1) or fd_write (2): stdio never blocks, other descriptors are bad.
                let fd = u32::from_le_bytes(sub[16..20].try_into().expect("4 bytes")) as i32;
                let (error, nbytes) = match fd {
                    // Attached, a read may wait for input: say one byte, as a pipe with data
                    // would, and let the read block.
                    0 if state.console.is_some() => (SUCCESS, 1),
                    0 => (SUCCESS, (state.stdin.len() - state.stdin_pos) as u64),
                    1 | 2 => (SUCCESS, 0),
                    _ => (EBADF, 0),
                };
                out.push((userdata, error, tag, nbytes));
            }
        }
        if out.is_empty() {
            let (at, userdata) = earliest.expect("at least one clock subscription");
            out.push((userdata, SUCCESS, EVENTTYPE_CLOCK, 0));
            wake = Some(at);
        }
        let dst = bytes_mut(mem, events, out.len() * EVENT_SIZE)?;
        for (event, (userdata, error, tag, nbytes)) in dst.chunks_exact_mut(EVENT_SIZE).zip(&out) {
            event.fill(0);
            event[0..8].copy_from_slice(&userdata.to_le_bytes());
            event[8..10].copy_from_slice(&(*error as u16).to_le_bytes());
            event[10] = *tag;
            event[16..24].copy_from_slice(&nbytes.to_le_bytes());
        }
        write_u32(mem, nevents, out.len() as u32)
    })();
    match (result, wake) {
        (Err(e), _) => Ok(e),
        (Ok(()), Some(at)) if at > Instant::now() => Err(Error::host(HostStop::Sleep(at))),
        (Ok(()), _) => Ok(SUCCESS),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_rejects_out_of_bounds_and_overflow() {
        let mem = [0u8; 16];
        assert_eq!(range(&mem, 0, 16), Ok(0..16));
        assert_eq!(range(&mem, 8, 9), Err(EFAULT));
        assert_eq!(range(&mem, -1, 2), Err(EFAULT));
        assert_eq!(range(&mem, 16, 0), Ok(16..16));
        assert_eq!(range(&mem, 13, 4), Err(EFAULT));
        assert_eq!(range(&mem, i32::MAX, usize::MAX), Err(EFAULT));
    }

    #[test]
    fn every_name_is_provided_once() {
        assert!(provides("fd_write") && provides("path_open") && !provides("fd_magic"));
    }
}
