//! The `wisp` import module: the key-value store, for guests.
//!
//! The ABI (documented for guest authors in functions/README.md): every pointer and length is
//! checked against the guest's memory first (`BAD_POINTER`), then the store name against the
//! function's grants (`NO_SUCH_STORE`), then the key and value against their caps. No guest
//! value can panic the host or reach memory outside the guest's.
//!
//! Each operation costs [`OP_FUEL`]: a store operation takes real time, and fuel is what
//! bounds a slice, so a guest looping over the store still yields and meets its deadline.

use wasmi::Caller;
use wasmi::errors::LinkerError;

use super::host::{Completion, HostState, HostStop, Imports, guest_range};
use crate::store::{KvError, MAX_KEY, Pending, Scoped};

pub(crate) const MODULE_NAME: &str = "wisp";

/// Fuel each store operation costs the guest.
pub const OP_FUEL: u64 = 10_000;

const NOT_FOUND: i32 = -1;
const NO_SUCH_STORE: i32 = -2;
const INVALID_KEY: i32 = -3;
const VALUE_TOO_LARGE: i32 = -4;
const BAD_POINTER: i32 = -5;
const NOT_A_NUMBER: i32 = -6;
const BUFFER_TOO_SMALL: i32 = -7;
const STORE_FAILED: i32 = -8;
pub(crate) const QUEUE_FULL: i32 = -9;
// -10 to -12 are `publish`'s (publish.rs).
const STORE_UNAVAILABLE: i32 = -13;

const NAMES: &[&str] = &[
    "kv_get",
    "kv_set",
    "kv_delete",
    "kv_exists",
    "kv_increment",
    "kv_compare_and_swap",
    "kv_list",
];

pub(crate) fn provides(name: &str) -> bool {
    NAMES.contains(&name)
}

fn code(e: KvError) -> i32 {
    match e {
        KvError::NoSuchStore => NO_SUCH_STORE,
        KvError::InvalidKey => INVALID_KEY,
        KvError::ValueTooLarge => VALUE_TOO_LARGE,
        KvError::NotANumber => NOT_A_NUMBER,
        KvError::QueueFull => QUEUE_FULL,
        KvError::Failed(_) => STORE_FAILED,
        KvError::Unavailable(_) => STORE_UNAVAILABLE,
    }
}

/// The guest's memory, its host state, and the checks every call starts with.
struct Call<'a> {
    mem: &'a mut [u8],
    state: &'a mut HostState,
}

impl<'a> Call<'a> {
    /// Charges the operation's fuel and borrows memory and state together.
    fn begin(caller: &'a mut Caller<'_, HostState>) -> Result<Call<'a>, i32> {
        let fuel = caller.get_fuel().unwrap_or(0);
        let _ = caller.set_fuel(fuel.saturating_sub(OP_FUEL));
        let memory = caller.data().memory.ok_or(BAD_POINTER)?;
        let (mem, state) = memory.data_and_store_mut(caller);
        Ok(Call { mem, state })
    }

    fn range(&self, ptr: i32, len: i32) -> Result<std::ops::Range<usize>, i32> {
        guest_range(self.mem.len(), ptr, len as u32 as usize).ok_or(BAD_POINTER)
    }

    fn bytes(&self, ptr: i32, len: i32) -> Result<Vec<u8>, i32> {
        let r = self.range(ptr, len)?;
        Ok(self.mem[r].to_vec())
    }

    /// `(ptr, len)`, or `None` where `len` is -1.
    fn optional(&self, ptr: i32, len: i32) -> Result<Option<Vec<u8>>, i32> {
        if len == -1 {
            Ok(None)
        } else {
            self.bytes(ptr, len).map(Some)
        }
    }

    fn store(&self, ptr: i32, len: i32) -> Result<Scoped, i32> {
        let name = self.range(ptr, len)?;
        let grants = self.state.kv.as_ref().ok_or(NO_SUCH_STORE)?;
        grants.get(&self.mem[name]).cloned().ok_or(NO_SUCH_STORE)
    }
}

/// How an operation's return value (and anything written into memory) follows from its
/// answer. A plain closure: it is boxed only if the guest has to wait for the answer, so an
/// answer that is there at once (every embedded read) costs no allocation.
trait Finish<T>: FnOnce(T, &mut [u8]) -> i32 + Send + 'static {}
impl<T, F: FnOnce(T, &mut [u8]) -> i32 + Send + 'static> Finish<T> for F {}

/// A write: made durable before the invocation's answer, whatever its own answer turns out
/// to be.
fn write<T: Send + 'static, F: Finish<T>>(
    caller: &mut Caller<'_, HostState>,
    op: impl FnOnce(&mut Call) -> Result<(Pending<T>, F), i32>,
) -> Result<i32, wasmi::Error> {
    ask(caller, true, op)
}

/// A read.
fn read<T: Send + 'static, F: Finish<T>>(
    caller: &mut Caller<'_, HostState>,
    op: impl FnOnce(&mut Call) -> Result<(Pending<T>, F), i32>,
) -> Result<i32, wasmi::Error> {
    ask(caller, false, op)
}

/// Starts an operation with `op`; if its answer is not here at once, suspends the guest until
/// it is (the store commits on its own thread, Redis answers over the network, and this
/// executor thread runs others meanwhile).
fn ask<T: Send + 'static, F: Finish<T>>(
    caller: &mut Caller<'_, HostState>,
    writes: bool,
    op: impl FnOnce(&mut Call) -> Result<(Pending<T>, F), i32>,
) -> Result<i32, wasmi::Error> {
    let mut call = match Call::begin(caller) {
        Ok(call) => call,
        Err(code) => return Ok(code),
    };
    let (pending, finish) = match op(&mut call) {
        Ok(asked) => asked,
        Err(code) => return Ok(code),
    };
    call.state.kv_wrote |= writes;
    fn settle<T>(result: Result<T, KvError>, finish: impl Finish<T>, mem: &mut [u8]) -> i32 {
        result.map_or_else(code, |value| finish(value, mem))
    }
    match pending.now() {
        Ok(result) => Ok(settle(result, finish, call.mem)),
        Err(pending) => {
            let until = async move {
                let result = pending.get().await;
                Box::new(move |mem: &mut [u8], _: &mut HostState| settle(result, finish, mem))
                    as Completion
            };
            Err(wasmi::Error::host(HostStop::wait(until)))
        }
    }
}

type C<'a> = Caller<'a, HostState>;

pub(crate) fn add_to_linker(linker: &mut Imports) -> Result<(), LinkerError> {
    let m = MODULE_NAME;
    linker.func_wrap(
        m,
        "kv_get",
        |mut c: C, sp: i32, sl: i32, kp: i32, kl: i32, bp: i32, bl: i32| {
            read(&mut c, |call| {
                let key = call.bytes(kp, kl)?;
                // Checked now: linear memory never shrinks, so it is still there at the answer.
                let buf = call.range(bp, bl)?;
                let store = call.store(sp, sl)?;
                let finish = move |value: Option<Vec<u8>>, mem: &mut [u8]| {
                    let Some(value) = value else {
                        return NOT_FOUND;
                    };
                    let n = value.len().min(buf.len());
                    mem[buf.start..buf.start + n].copy_from_slice(&value[..n]);
                    value.len() as i32
                };
                Ok((store.get(&key), finish))
            })
        },
    )?;
    linker.func_wrap(
        m,
        "kv_set",
        |mut c: C, sp: i32, sl: i32, kp: i32, kl: i32, vp: i32, vl: i32| {
            write(&mut c, |call| {
                let (key, value) = (call.bytes(kp, kl)?, call.bytes(vp, vl)?);
                let store = call.store(sp, sl)?;
                Ok((store.set(&key, &value), |(), _: &mut [u8]| 0))
            })
        },
    )?;
    linker.func_wrap(
        m,
        "kv_delete",
        |mut c: C, sp: i32, sl: i32, kp: i32, kl: i32| {
            write(&mut c, |call| {
                let key = call.bytes(kp, kl)?;
                let store = call.store(sp, sl)?;
                Ok((store.delete(&key), |deleted, _: &mut [u8]| {
                    i32::from(deleted)
                }))
            })
        },
    )?;
    linker.func_wrap(
        m,
        "kv_exists",
        |mut c: C, sp: i32, sl: i32, kp: i32, kl: i32| {
            read(&mut c, |call| {
                let key = call.bytes(kp, kl)?;
                let store = call.store(sp, sl)?;
                Ok((store.exists(&key), |exists, _: &mut [u8]| i32::from(exists)))
            })
        },
    )?;
    linker.func_wrap(
        m,
        "kv_increment",
        |mut c: C, sp: i32, sl: i32, kp: i32, kl: i32, delta: i64, out: i32| {
            write(&mut c, |call| {
                let key = call.bytes(kp, kl)?;
                // Checked now: linear memory never shrinks, so it is still there at the answer.
                let out = call.range(out, 8)?;
                let store = call.store(sp, sl)?;
                let finish = move |value: i64, mem: &mut [u8]| {
                    mem[out].copy_from_slice(&value.to_le_bytes());
                    0
                };
                Ok((store.increment(&key, delta), finish))
            })
        },
    )?;
    linker.func_wrap(
        m,
        "kv_compare_and_swap",
        |mut c: C, sp: i32, sl: i32, kp: i32, kl: i32, ep: i32, el: i32, np: i32, nl: i32| {
            write(&mut c, |call| {
                let key = call.bytes(kp, kl)?;
                let expected = call.optional(ep, el)?;
                let new = call.optional(np, nl)?;
                let store = call.store(sp, sl)?;
                let swapped = store.compare_and_swap(&key, expected.as_deref(), new.as_deref());
                Ok((swapped, |swapped, _: &mut [u8]| i32::from(swapped)))
            })
        },
    )?;
    linker.func_wrap(
        m,
        "kv_list",
        |mut c: C, sp: i32, sl: i32, pp: i32, pl: i32, ap: i32, al: i32, bp: i32, bl: i32| {
            read(&mut c, |call| {
                let prefix = call.bytes(pp, pl)?;
                let after = call.bytes(ap, al)?;
                let buf = call.range(bp, bl)?;
                let store = call.store(sp, sl)?;
                let after = (!after.is_empty()).then_some(after.as_slice());
                // Enough keys to fill any buffer of whole keys, at 4 bytes of length each.
                let most = (buf.len() / 5).clamp(1, 1024);
                let finish = move |keys: Vec<Vec<u8>>, mem: &mut [u8]| {
                    let mut at = buf.start;
                    let mut written = 0;
                    for key in &keys {
                        let need = 4 + key.len();
                        if at + need > buf.end {
                            break;
                        }
                        mem[at..at + 4].copy_from_slice(&(key.len() as u32).to_le_bytes());
                        mem[at + 4..at + need].copy_from_slice(key);
                        at += need;
                        written += 1;
                    }
                    if written == 0 && !keys.is_empty() {
                        debug_assert!(keys[0].len() <= MAX_KEY);
                        return BUFFER_TOO_SMALL;
                    }
                    written
                };
                Ok((store.list(&prefix, after, most), finish))
            })
        },
    )?;
    Ok(())
}
