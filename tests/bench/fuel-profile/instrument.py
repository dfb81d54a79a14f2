#!/usr/bin/env python3
"""Adds profiling hooks to every function of a wasm module, for fuel-profile.

    instrument.py IN.wasm OUT

writes OUT.wasm (each function calls the imports prof.enter(K) first and prof.exit(K) before
each return and at its end) and OUT.names (K<TAB>name, from the module's name section: build the
module with CARGO_PROFILE_RELEASE_STRIP=false; demangled with c++filt if there is one). Uses
wasm2wat and wat2wasm from wabt.
"""
import re
import subprocess
import sys

src, out = sys.argv[1], sys.argv[2]
wat = subprocess.run(['wasm2wat', src], capture_output=True, text=True, check=True).stdout
lines = wat.split('\n')


def code(line):
    """The line without comments and string contents, for counting parentheses."""
    line = re.sub(r'\(;.*?;\)', '', line)
    line = re.sub(r'"(\\.|[^"\\])*"', '""', line)
    return line.split(';;')[0]


def hook(kind, k):
    return f'    i32.const {k}\n    call $__prof_{kind}'


res, names = [], []
last_import = max(i for i, l in enumerate(lines) if l.startswith('  (import '))
k, depth, in_func, pending_enter = -1, 0, False, False
for idx, line in enumerate(lines):
    c = code(line)
    if not in_func and line.startswith('  (func '):
        k += 1
        m = re.match(r'  \(func (\$\S+)', line)
        names.append(m.group(1) if m else f'func{k}')
        depth = c.count('(') - c.count(')')
        if depth == 0:  # a function with an empty body, on one line
            res.append(line[:-1] + '\n' + hook('enter', k) + '\n' + hook('exit', k) + ')')
            continue
        res.append(line)
        in_func, pending_enter = True, True
        continue
    if in_func:
        s = c.strip()
        if pending_enter and not s.startswith('(local'):
            res.append(hook('enter', k))
            pending_enter = False
        d = c.count('(') - c.count(')')
        if s == 'return' or s.startswith('return '):
            res.append(hook('exit', k))
        if depth + d == 0:  # this line's last ')' closes the function
            inner = line.rstrip()[:-1]
            if pending_enter:
                if inner.strip():
                    res.append(inner)
                res.append(hook('enter', k))
                pending_enter = False
            else:
                if inner.strip() == 'return':
                    res.append(hook('exit', k))
                if inner.strip():
                    res.append(inner)
            res.append(hook('exit', k) + ')')
            in_func, depth = False, 0
            continue
        depth += d
        res.append(line)
        continue
    res.append(line)
    if idx == last_import:
        res.append('  (import "prof" "enter" (func $__prof_enter (param i32)))')
        res.append('  (import "prof" "exit" (func $__prof_exit (param i32)))')

with open(out + '.wat', 'w') as f:
    f.write('\n'.join(res))


def demangle(names):
    """Rust symbols made readable with c++filt (binutils), when there is one."""
    names = [n.lstrip('$') for n in names]
    try:
        out = subprocess.run(['c++filt'], input='\n'.join(names), capture_output=True,
                             text=True, check=True).stdout.split('\n')
    except (OSError, subprocess.CalledProcessError):
        return names
    out = [re.sub(r'::h[0-9a-f]{16}$', '', re.sub(r'\[[0-9a-f]+\]', '', n)) for n in out]
    return out[:len(names)] if len(out) >= len(names) else names


with open(out + '.names', 'w') as f:
    f.write(''.join(f'{i}\t{n}\n' for i, n in enumerate(demangle(names))))
subprocess.run(['wat2wasm', '--enable-all', '-o', out + '.wasm', out + '.wat'], check=True)
print(f'{k + 1} functions instrumented: {out}.wasm', file=sys.stderr)
