//! `wisp.http_send` and `wisp.http_read`: a guest's outbound HTTP requests.
//!
//! The ABI (documented for guest authors in functions/README.md):
//!
//! - `http_send(method_ptr, method_len, url_ptr, url_len, headers_ptr, headers_len, body_ptr,
//!   body_len, out_ptr) -> i32`: headers are `Name: value` lines separated by `\n` (or
//!   `\r\n`). Returns the response's status (100 to 599) and writes two little-endian u32 at
//!   `out_ptr`: the length of the response's headers (as `name: value\n` lines) and of its
//!   body; or a negative error code. The response is kept for `http_read` until the next
//!   `http_send`.
//! - `http_read(part, offset, buf_ptr, buf_len) -> i32`: copies the response's headers
//!   (`part` 0) or body (1) from `offset` into the buffer; returns the number of bytes copied.
//!
//! While the request is out, the guest is suspended and its thread and its place among the
//! running invocations go to others (`HostStop::Park`).

use wasmi::Caller;
use wasmi::errors::LinkerError;

use std::time::Instant;

use super::Limit;
use super::host::{Completion, HostState, HostStop, Imports, guest_range};
use super::kv::{MODULE_NAME, OP_FUEL};
use crate::outbound::{Failure, Request, Response};

const BAD_POINTER: i32 = -5;
const NOT_ALLOWED: i32 = -14;
const INVALID_REQUEST: i32 = -15;
const TIMEOUT: i32 = -16;
const TOO_LARGE: i32 = -17;
const TOO_MANY_CALLS: i32 = -18;
const CONNECT_FAILED: i32 = -19;
const TLS_FAILED: i32 = -20;
const BAD_RESPONSE: i32 = -21;
const NO_RESPONSE: i32 = -22;

pub(crate) fn provides(name: &str) -> bool {
    matches!(name, "http_send" | "http_read")
}

fn code(failure: &Failure) -> i32 {
    match failure {
        Failure::NotAllowed(_) => NOT_ALLOWED,
        Failure::Invalid(_) => INVALID_REQUEST,
        Failure::Timeout => TIMEOUT,
        Failure::TooLarge => TOO_LARGE,
        Failure::TooManyCalls => TOO_MANY_CALLS,
        Failure::Connect(_) => CONNECT_FAILED,
        Failure::Tls(_) => TLS_FAILED,
        Failure::Protocol(_) => BAD_RESPONSE,
    }
}

/// A response as the guest reads it.
pub(crate) struct Held {
    headers: Vec<u8>,
    body: Vec<u8>,
}

impl Held {
    fn new(response: Response) -> Held {
        let mut headers = Vec::new();
        for (name, value) in &response.headers {
            headers.extend_from_slice(name.to_ascii_lowercase().as_bytes());
            headers.extend_from_slice(b": ");
            headers.extend_from_slice(value.as_bytes());
            headers.push(b'\n');
        }
        Held {
            headers,
            body: response.body,
        }
    }
}

/// `Name: value` lines into pairs; `None` for a line without a colon.
fn header_lines(bytes: &[u8]) -> Option<Vec<(String, String)>> {
    let text = std::str::from_utf8(bytes).ok()?;
    let lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (name, value) = l.split_once(':')?;
            Some((name.trim().to_string(), value.trim().to_string()))
        })
        .collect()
}

type Span = (i32, i32);

fn send(
    caller: &mut Caller<'_, HostState>,
    method: Span,
    url: Span,
    headers: Span,
    body: Span,
    out: i32,
) -> Result<i32, wasmi::Error> {
    let fuel = caller.get_fuel().unwrap_or(0);
    let _ = caller.set_fuel(fuel.saturating_sub(OP_FUEL));
    let Some(memory) = caller.data().memory else {
        return Ok(BAD_POINTER);
    };
    let (mem, state) = memory.data_and_store_mut(caller);
    let range = |(ptr, len): Span| guest_range(mem.len(), ptr, len as u32 as usize);
    let (Some(m), Some(u), Some(h), Some(b), Some(out)) = (
        range(method),
        range(url),
        range(headers),
        range(body),
        guest_range(mem.len(), out, 8),
    ) else {
        return Ok(BAD_POINTER);
    };
    state.http_response = None;
    let text = |r: std::ops::Range<usize>| String::from_utf8(mem[r].to_vec()).ok();
    let (Some(method), Some(url), Some(headers)) = (text(m), text(u), header_lines(&mem[h])) else {
        return Ok(INVALID_REQUEST);
    };
    let request = Request {
        method,
        url,
        headers,
        body: mem[b].to_vec(),
    };
    let Some(outbound) = state.outbound.clone() else {
        let origin = request.url.split('/').take(3).collect::<Vec<_>>().join("/");
        return Ok(code(&Failure::NotAllowed(origin)));
    };
    let url = match outbound.admit(&request, state.http_calls) {
        Ok(url) => url,
        Err(failure) => return Ok(code(&failure)),
    };
    let deadline = state.deadline;
    if Instant::now() >= deadline {
        let limit = Limit::Timeout(state.timeout);
        return Err(wasmi::Error::host(HostStop::Limit(limit)));
    }
    state.http_calls += 1;
    let until = async move {
        let result = outbound.send(request, url, deadline).await;
        Box::new(move |mem: &mut [u8], state: &mut HostState| match result {
            Ok(response) => {
                let status = i32::from(response.status);
                let held = Held::new(response);
                mem[out.start..out.start + 4]
                    .copy_from_slice(&(held.headers.len() as u32).to_le_bytes());
                mem[out.start + 4..out.end]
                    .copy_from_slice(&(held.body.len() as u32).to_le_bytes());
                state.http_response = Some(held);
                status
            }
            Err(failure) => code(&failure),
        }) as Completion
    };
    Err(wasmi::Error::host(HostStop::park(until)))
}

fn read(caller: &mut Caller<'_, HostState>, part: i32, offset: i32, buf: Span) -> i32 {
    let Some(memory) = caller.data().memory else {
        return BAD_POINTER;
    };
    let (mem, state) = memory.data_and_store_mut(caller);
    let Some(buf) = guest_range(mem.len(), buf.0, buf.1 as u32 as usize) else {
        return BAD_POINTER;
    };
    let Some(held) = &state.http_response else {
        return NO_RESPONSE;
    };
    let bytes = match part {
        0 => &held.headers,
        1 => &held.body,
        _ => return NO_RESPONSE,
    };
    let from = (offset as u32 as usize).min(bytes.len());
    let n = (bytes.len() - from).min(buf.len());
    mem[buf.start..buf.start + n].copy_from_slice(&bytes[from..from + n]);
    n as i32
}

type C<'a> = Caller<'a, HostState>;

pub(crate) fn add_to_linker(linker: &mut Imports) -> Result<(), LinkerError> {
    linker.func_wrap(
        MODULE_NAME,
        "http_send",
        |mut c: C,
         mp: i32,
         ml: i32,
         up: i32,
         ul: i32,
         hp: i32,
         hl: i32,
         bp: i32,
         bl: i32,
         out: i32| { send(&mut c, (mp, ml), (up, ul), (hp, hl), (bp, bl), out) },
    )?;
    linker.func_wrap(
        MODULE_NAME,
        "http_read",
        |mut c: C, part: i32, offset: i32, bp: i32, bl: i32| read(&mut c, part, offset, (bp, bl)),
    )
}
