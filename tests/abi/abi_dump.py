#!/usr/bin/env python3
"""abi_dump.py — libpandagpt's public ABI as one canonical text, and its check against a baseline.

The dump (one fact a line, sorted) holds:
  func      every PG_API prototype of include/pandagpt.h, parameter names left out
  struct    every struct of the header: sizeof, alignof, and each field's offset, type and size
  enum      every enum: sizeof, alignof, and each constant's value
  typedef   the other typedefs (function pointers) and the opaque handles
  macro     the PG_* object-like macros (PG_VERSION_*)
  symbol    `nm -D --defined-only` of libpandagpt.so: each name and its symbol type
  soname    the library's SONAME
Sizes, offsets and values are not computed here: a small C program generated from the parsed
header prints them, compiled with the project's C compiler, so they are what a C program gets.

The header must be understood completely: a declaration this script cannot classify (a variable,
a bit field, a nested struct, a function returning a function pointer...) is an error, never
skipped, so that nothing reaches the ABI unseen.

Also checked on every run (independent of the baseline): the library exports exactly the header's
PG_API functions (as code, type T/W/i), and they are all named pg_* — the rule that
tests/check_exports.sh enforces on any host, here tied to the header.

Modes:
  (default)  print the dump
  --check    compare with --baseline; on a difference print a unified diff and each change
             classified as INCOMPATIBLE (removals, changed layouts, values or signatures;
             fields inserted inside a struct) or as a compatible addition (new functions, enum
             constants, types; fields appended after the old end of a struct that starts with
             `uint32_t struct_size`), then fail either way: every ABI change must be deliberate.
             With the environment variable PG_ABI_UPDATE=1, --check acts as --update.
  --update   write the dump to --baseline (after the consistency checks pass)
The committed baseline describes x86_64 Linux (LP64); on another host --check and --update skip
(exit status 77). Exit status: 0 same, 1 different or inconsistent, 77 skipped, 99 could not run.

Usage:
  abi_dump.py [--check|--update] [--baseline FILE] [--builddir DIR] --header pandagpt.h
              --lib libpandagpt.so -- CC [CC ARGS...]
Python 3 standard library only.
"""

import argparse
import difflib
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile

EXIT_SKIP = 77
EXIT_ERROR = 99

# ---- C text: comments, preprocessor, declarations


class AbiError(Exception):
    """The header or the library cannot be dumped (the check cannot run)."""


C_KEYWORDS = {
    'auto', 'break', 'case', 'char', 'const', 'continue', 'default', 'do', 'double', 'else',
    'enum', 'extern', 'float', 'for', 'goto', 'if', 'inline', 'int', 'long', 'register',
    'restrict', 'return', 'short', 'signed', 'sizeof', 'static', 'struct', 'switch', 'typedef',
    'union', 'unsigned', 'void', 'volatile', 'while', '_Alignas', '_Alignof', '_Atomic',
    '_Bool', '_Complex', '_Generic', '_Imaginary', '_Noreturn', '_Static_assert',
    '_Thread_local',
}
QUALIFIERS = {'const', 'volatile', 'restrict', '_Atomic'}
TAG_KEYWORDS = {'struct', 'union', 'enum'}
TOKEN_RE = re.compile(r'\.\.\.|[A-Za-z_]\w*|\d\w*|\S')


def strip_comments(text):
    """Replaces comments by a space (block comments keep their newlines); strings stay."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith('/*', i):
            end = text.find('*/', i + 2)
            if end < 0:
                raise AbiError('unterminated comment')
            out.append(' ' + '\n' * text.count('\n', i, end))
            i = end + 2
        elif text.startswith('//', i):
            end = text.find('\n', i)
            i = n if end < 0 else end
            out.append(' ')
        elif c in '"\'':
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == '\\' else 1
            out.append(text[i:j + 1])
            i = j + 1
        else:
            out.append(c)
            i += 1
    return ''.join(out)


def preprocess(text):
    """Returns (C code outside preprocessor lines, {macro: [values]}).

    Only what a C compiler sees: #ifdef __cplusplus blocks are dropped (their #else kept); every
    other conditional is transparent (both branches kept), which is harmless for the #define
    branches of PG_API and is caught by the duplicate check for declarations."""
    text = strip_comments(text).replace('\\\n', ' ')
    code, macros = [], {}
    stack = []  # per open conditional: [tests __cplusplus, current branch dropped]
    for line in text.split('\n'):
        s = line.strip()
        dropped = any(level[1] for level in stack)
        if not s.startswith('#'):
            if not dropped:
                code.append(line)
            continue
        m = re.match(r'#\s*(\w+)\s*(.*)$', s)
        if not m:
            continue
        directive, rest = m.group(1), m.group(2).strip()
        if directive in ('if', 'ifdef', 'ifndef'):
            cplusplus = '__cplusplus' in rest
            negated = directive == 'ifndef' or rest.startswith('!')
            stack.append([cplusplus, cplusplus and not negated])
        elif directive in ('else', 'elif'):
            if not stack:
                raise AbiError('#%s without #if' % directive)
            if stack[-1][0]:  # a C compiler takes the other branch of a __cplusplus test
                if directive == 'elif':
                    raise AbiError('#elif after a __cplusplus test: ' + rest)
                stack[-1][1] = not stack[-1][1]
        elif directive == 'endif':
            if not stack:
                raise AbiError('#endif without #if')
            stack.pop()
        elif directive == 'define' and not dropped:
            dm = re.match(r'([A-Za-z_]\w*)(\(?)\s*(.*)$', rest)
            if dm and not dm.group(2):
                macros.setdefault(dm.group(1), []).append(' '.join(dm.group(3).split()))
    if stack:
        raise AbiError('unterminated #if')
    return '\n'.join(code), macros


def split_top(text, sep, opening='({[', closing=')}]'):
    """Splits text at sep characters outside brackets."""
    parts, depth, cur = [], 0, []
    for c in text:
        if c in opening:
            depth += 1
        elif c in closing:
            depth -= 1
        if c == sep and depth == 0:
            parts.append(''.join(cur))
            cur = []
        else:
            cur.append(c)
    parts.append(''.join(cur))
    return parts


def tokens(text):
    return TOKEN_RE.findall(text)


def is_word(tok):
    return bool(re.match(r'[A-Za-z_0-9]', tok))


def join_tokens(toks):
    """Canonical spelling of a type: `const char *`, `pg_media *const *`, `int (*)(void *)`."""
    out = ''
    for t in toks:
        if t == ',':
            out += ', '
        elif t in (')', ']'):
            out += t
        elif t == '[':
            out += t
        elif t == '*':
            out += (' ' if out and out[-1] not in '*( ' else '') + '*'
        elif t == '(':
            out += (' ' if out and (is_word(out[-1]) or out[-1] == ')') else '') + '('
        else:  # a word or a number
            out += (' ' if out and (is_word(out[-1]) or out[-1] == ')') else '') + t
    return out


def declarator(decl):
    """Splits one declaration (`const char *path`, `int (*cb)(void *u)`, `float v[4]`, `size_t`)
    into (name or None, its type without the name). Parameter names inside function types go."""
    decl = ' '.join(decl.split())
    fp = re.match(r'^(.*?)\(\s*\*\s*((?:const\s+)?)([A-Za-z_]\w*)?\s*\)\s*\((.*)\)$', decl)
    if fp:
        ret, qual, name, params = fp.groups()
        if '(' in ret:
            raise AbiError('function returning a function pointer: ' + decl)
        return name, '%s (*%s)(%s)' % (join_tokens(tokens(ret)), qual.strip(),
                                        param_list(params))
    if '(' in decl:
        raise AbiError('unsupported declarator: ' + decl)
    suffix = ''
    arr = re.match(r'^(.*?)((?:\s*\[[^\]]*\])+)$', decl)
    if arr:
        decl, suffix = arr.group(1), join_tokens(tokens(arr.group(2)))
    toks = tokens(decl)
    name = None
    if toks and re.match(r'[A-Za-z_]\w*$', toks[-1]) and toks[-1] not in C_KEYWORDS:
        before = toks[:-1]
        specifiers = [t for t in before if t not in QUALIFIERS]
        if specifiers and before[-1] not in TAG_KEYWORDS:
            name, toks = toks[-1], before
    if not toks:
        raise AbiError('no type in declaration: ' + decl)
    return name, join_tokens(toks) + suffix


def param_list(params):
    params = params.strip()
    if params in ('', 'void'):
        return 'void' if params else ''
    return ', '.join(declarator(p)[1] if p.strip() != '...' else '...'
                     for p in split_top(params, ','))


# ---- the header's declarations

class Header:
    def __init__(self):
        self.functions = {}   # name -> "ret (params)"
        self.structs = {}     # C type spelling -> [(field, type)]
        self.enums = {}       # C type spelling -> [constant]
        self.typedefs = {}    # name -> type
        self.opaque = {}      # typedef name -> "struct tag"
        self.macros = {}      # name -> value text


def parse_header(path):
    with open(path, encoding='utf-8') as f:
        code, macros = preprocess(f.read())
    h = Header()
    for name, values in macros.items():
        # PG_API and its kin are defined once per platform branch: not ABI
        if name.startswith('PG_') and len(values) == 1 and values[0]:
            h.macros[name] = values[0]

    decls = split_top(code, ';', '{', '}')
    if decls[-1].strip():
        raise AbiError('text after the last declaration: ' + ' '.join(decls[-1].split())[:80])
    defined_tags = set()
    aliases = []
    for raw in decls[:-1]:
        d = ' '.join(raw.split())
        if not d:
            continue
        body = re.match(r'^(typedef\s+)?(struct|union|enum)\s*([A-Za-z_]\w*)?\s*\{(.*)\}\s*'
                        r'([A-Za-z_]\w*)?$', d)
        if body:
            is_typedef, kind, tag, members, alias = body.groups()
            if kind == 'union':
                raise AbiError('unions are not dumped yet: ' + d[:80])
            if is_typedef and not alias:
                raise AbiError('typedef without a name: ' + d[:80])
            if not is_typedef and alias:
                raise AbiError('variable of an inline type: ' + d[:80])
            if tag:
                defined_tags.add('%s %s' % (kind, tag))
            ctype = alias if alias else '%s %s' % (kind, tag)
            if ctype in h.structs or ctype in h.enums:
                raise AbiError('%s defined twice (a conditional declaration?)' % ctype)
            if kind == 'struct':
                h.structs[ctype] = parse_fields(ctype, members)
            else:
                h.enums[ctype] = parse_enumerators(ctype, members)
            continue
        alias = re.match(r'^typedef\s+(struct|union|enum)\s+([A-Za-z_]\w*)\s+([A-Za-z_]\w*)$', d)
        if alias:
            aliases.append((alias.group(3), '%s %s' % (alias.group(1), alias.group(2))))
            continue
        if d.startswith('typedef '):
            name, t = declarator(d[len('typedef '):])
            if not name:
                raise AbiError('typedef without a name: ' + d)
            h.typedefs[name] = t
            continue
        if d.startswith('PG_API '):
            fm = re.match(r'^PG_API\s+([^()]*?)\b([A-Za-z_]\w*)\s*\((.*)\)$', d)
            if not fm or not fm.group(1).strip():
                raise AbiError('cannot read this PG_API prototype: ' + d)
            ret, name, params = fm.groups()
            if name in h.functions:
                raise AbiError('%s declared twice (a conditional declaration?)' % name)
            h.functions[name] = '%s (%s)' % (join_tokens(tokens(ret)), param_list(params))
            continue
        raise AbiError('declaration abi_dump.py does not understand (teach it, do not skip it): '
                       + d[:120])
    for name, tagged in aliases:
        if tagged in defined_tags:
            h.typedefs[name] = tagged
        else:
            h.opaque[name] = tagged
    return h


def parse_fields(ctype, members):
    fields = []
    for m in split_top(members, ';', '({[', ')}]'):
        m = ' '.join(m.split())
        if not m:
            continue
        if '{' in m:
            raise AbiError('%s: nested struct or union fields are not dumped: %s' % (ctype, m))
        if re.search(r':\s*\d', m):
            raise AbiError('%s: bit fields have no offset: %s' % (ctype, m))
        if len(split_top(m, ',')) > 1:
            raise AbiError('%s: one field per declaration, please: %s' % (ctype, m))
        name, t = declarator(m)
        if not name:
            raise AbiError('%s: field without a name: %s' % (ctype, m))
        fields.append((name, t))
    if not fields:
        raise AbiError(ctype + ': no fields')
    return fields


def parse_enumerators(ctype, members):
    names = []
    for e in split_top(members, ','):
        e = e.strip()
        if not e:
            continue  # a trailing comma
        m = re.match(r'^([A-Za-z_]\w*)\s*(=.*)?$', e)
        if not m:
            raise AbiError('%s: cannot read enumerator %s' % (ctype, e))
        names.append(m.group(1))
    return names


# ---- the numbers, from a C program

def c_literal(s):
    return '"' + s.replace('\\', '\\\\').replace('"', '\\"').replace('\n', '\\n') + '"'


def probe_program(header_path, h):
    """A C program printing the dump's struct, enum and macro lines (printf formats below)."""
    lines = ['#include <stddef.h>', '#include <stdio.h>',
             '#include ' + c_literal(os.path.abspath(header_path)),
             'int main(void) {',
             '#if defined(__x86_64__) && defined(__LP64__) && defined(__linux__)',
             '    puts("target x86_64-linux-lp64");',
             '#else',
             '    puts("target other");',
             '#endif']

    def emit(fmt, *args):
        lines.append('    printf(%s%s);' % (c_literal(fmt), ''.join(', ' + a for a in args)))

    for ctype, fields in h.structs.items():
        emit('struct %s: size %%zu, align %%zu\n' % ctype, 'sizeof(%s)' % ctype,
             '_Alignof(%s)' % ctype)
        for name, t in fields:
            emit('struct %s: @%%05zu %s: %s (size %%zu)\n' % (ctype, name, t),
                 'offsetof(%s, %s)' % (ctype, name), 'sizeof(((%s *)0)->%s)' % (ctype, name))
    for ctype, names in h.enums.items():
        emit('enum %s: size %%zu, align %%zu\n' % ctype, 'sizeof(%s)' % ctype,
             '_Alignof(%s)' % ctype)
        for name in names:
            emit('enum %s: %s = %%lld\n' % (ctype, name), '(long long)(%s)' % name)
    for name, value in h.macros.items():
        if re.match(r'^[\w\s()+\-*/<>|&~^]+$', value):
            emit('macro %s = %%lld\n' % name, '(long long)(%s)' % name)
        else:
            emit('macro %s = %s\n' % (name, value.replace('%', '%%')))
    lines += ['    return 0;', '}', '']
    return '\n'.join(lines)


def run_probe(header_path, h, cc, workdir):
    src = os.path.join(workdir, 'abi_probe.c')
    exe = os.path.join(workdir, 'abi_probe')
    with open(src, 'w', encoding='utf-8') as f:
        f.write(probe_program(header_path, h))
    cmd = list(cc) + ['-std=c11', '-o', exe, src]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise AbiError('compiling the layout probe failed:\n$ %s\n%s%s'
                       % (' '.join(cmd), r.stdout, r.stderr))
    r = subprocess.run([exe], capture_output=True, text=True)
    if r.returncode != 0:
        raise AbiError('the layout probe failed (status %d): %s' % (r.returncode, r.stderr))
    out = r.stdout.splitlines()
    return out[0].split(' ', 1)[1], out[1:]


# ---- the library

def tool(name):
    return os.environ.get(name.upper(), name)


def library_facts(lib):
    r = subprocess.run([tool('nm'), '-D', '--defined-only', lib], capture_output=True, text=True)
    if r.returncode != 0:
        raise AbiError('nm -D --defined-only %s failed: %s' % (lib, r.stderr.strip()))
    symbols = {}
    for line in r.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 2:
            symbols[parts[-1]] = parts[-2]
    if not symbols:
        raise AbiError('no exported symbols found in ' + lib)
    r = subprocess.run([tool('readelf'), '-d', lib], capture_output=True, text=True)
    if r.returncode != 0:
        raise AbiError('readelf -d %s failed: %s' % (lib, r.stderr.strip()))
    m = re.search(r'\(SONAME\)\s.*\[([^\]]+)\]', r.stdout)
    if not m:
        raise AbiError(lib + ' has no SONAME')
    return symbols, m.group(1)


# ---- the dump

def make_dump(h, probe_lines, symbols, soname):
    lines = list(probe_lines)
    lines += ['func %s: %s' % (n, sig) for n, sig in h.functions.items()]
    lines += ['typedef %s: %s' % (n, t) for n, t in h.typedefs.items()]
    lines += ['opaque %s: %s' % (n, t) for n, t in h.opaque.items()]
    lines += ['symbol %s: %s' % (n, t) for n, t in symbols.items()]
    lines.append('soname ' + soname)
    return sorted(lines)


def consistency_problems(h, symbols):
    """The header's PG_API functions and the library's exports must be the same pg_* names."""
    problems = []
    for name in sorted(h.functions):
        if not name.startswith('pg_'):
            problems.append('PG_API function %s is not named pg_*' % name)
        if name not in symbols:
            problems.append('PG_API function %s is not exported by the library' % name)
        elif symbols[name] not in ('T', 'W', 'i'):
            problems.append('%s is exported as symbol type %s, not code (T)'
                            % (name, symbols[name]))
    for name in sorted(symbols):
        if name not in h.functions:
            problems.append('the library exports %s (type %s), which pandagpt.h does not declare '
                            'PG_API%s' % (name, symbols[name],
                                          '' if name.startswith('pg_') else ' (and not pg_*)'))
    return problems


# ---- comparing two dumps

LINE_RE = re.compile(r'^(\w+) (.*)$')


def parse_dump(lines):
    """Dump lines -> {(kind, name): ...} facts for classification."""
    facts = {'soname': None, 'symbol': {}, 'func': {}, 'typedef': {}, 'opaque': {},
             'macro': {}, 'struct': {}, 'enum': {}}
    for line in lines:
        m = LINE_RE.match(line)
        if not m:
            continue
        kind, rest = m.groups()
        if kind == 'soname':
            facts['soname'] = rest
        elif kind == 'macro':
            name, value = rest.split(' = ', 1)
            facts['macro'][name] = value
        elif kind in ('symbol', 'func', 'typedef', 'opaque'):
            name, value = rest.split(': ', 1)
            facts[kind][name] = value
        elif kind in ('struct', 'enum'):
            name, value = rest.split(': ', 1)
            entry = facts[kind].setdefault(name, {'size': None, 'align': None, 'members': {}})
            sm = re.match(r'^size (\d+), align (\d+)$', value)
            if sm:
                entry['size'], entry['align'] = int(sm.group(1)), int(sm.group(2))
            elif kind == 'struct':
                fm = re.match(r'^@(\d+) (\w+): (.*) \(size (\d+)\)$', value)
                entry['members'][fm.group(2)] = (int(fm.group(1)), fm.group(3), int(fm.group(4)))
            else:
                name_, val = value.split(' = ', 1)
                entry['members'][name_] = val
    return facts


def classify(old, new):
    """Returns (incompatible, compatible, version) lists of messages."""
    inc, comp, version = [], [], []
    if old['soname'] != new['soname']:
        inc.append('SONAME %s -> %s' % (old['soname'], new['soname']))
    for kind, what in (('symbol', 'exported symbol'), ('func', 'function'),
                       ('typedef', 'typedef'), ('opaque', 'opaque type')):
        for name in sorted(set(old[kind]) | set(new[kind])):
            a, b = old[kind].get(name), new[kind].get(name)
            if a == b:
                continue
            if a is None:
                comp.append('new %s %s: %s' % (what, name, b))
            elif b is None:
                inc.append('%s %s removed (was: %s)' % (what, name, a))
            else:
                inc.append('%s %s changed: %s -> %s' % (what, name, a, b))
    for name in sorted(set(old['macro']) | set(new['macro'])):
        a, b = old['macro'].get(name), new['macro'].get(name)
        if a == b:
            continue
        if name.startswith('PG_VERSION_') and a is not None and b is not None:
            version.append('%s %s -> %s' % (name, a, b))
        elif a is None:
            comp.append('new macro %s = %s' % (name, b))
        elif b is None:
            inc.append('macro %s removed (was %s)' % (name, a))
        else:
            inc.append('macro %s changed: %s -> %s' % (name, a, b))
    for name in sorted(set(old['enum']) | set(new['enum'])):
        a, b = old['enum'].get(name), new['enum'].get(name)
        if a is None:
            comp.append('new enum %s' % name)
            continue
        if b is None:
            inc.append('enum %s removed' % name)
            continue
        if (a['size'], a['align']) != (b['size'], b['align']):
            inc.append('enum %s: size/align %s/%s -> %s/%s'
                       % (name, a['size'], a['align'], b['size'], b['align']))
        for c in sorted(set(a['members']) | set(b['members'])):
            va, vb = a['members'].get(c), b['members'].get(c)
            if va == vb:
                continue
            if va is None:
                comp.append('enum %s: new constant %s = %s' % (name, c, vb))
            elif vb is None:
                inc.append('enum %s: constant %s removed (was %s)' % (name, c, va))
            else:
                inc.append('enum %s: %s changed value %s -> %s' % (name, c, va, vb))
    for name in sorted(set(old['struct']) | set(new['struct'])):
        a, b = old['struct'].get(name), new['struct'].get(name)
        if a is None:
            comp.append('new struct %s' % name)
            continue
        if b is None:
            inc.append('struct %s removed' % name)
            continue
        struct_changes(name, a, b, inc, comp)
    return inc, comp, version


def struct_changes(name, a, b, inc, comp):
    def show(f):
        return '@%d %s (size %d)' % (f[0], f[1], f[2])

    broke = False
    for field, fa in sorted(a['members'].items(), key=lambda kv: kv[1][0]):
        fb = b['members'].get(field)
        if fb is None:
            inc.append('struct %s: field %s removed (was %s)' % (name, field, show(fa)))
            broke = True
        elif fb != fa:
            inc.append('struct %s: field %s %s -> %s' % (name, field, show(fa), show(fb)))
            broke = True
    first = min(a['members'].items(), key=lambda kv: kv[1][0], default=None)
    sized = first is not None and first[0] == 'struct_size' and first[1][:2] == (0, 'uint32_t')
    added = sorted(((f, fb) for f, fb in b['members'].items() if f not in a['members']),
                   key=lambda kv: kv[1][0])
    old_end = max((fa[0] + fa[2] for fa in a['members'].values()), default=0)
    for field, fb in added:
        if fb[0] < old_end:
            inc.append('struct %s: field %s inserted at %s, inside the old struct (size %d): '
                       'old programs pass the old layout' % (name, field, show(fb), a['size']))
            broke = True
        elif fb[0] < a['size']:
            inc.append('struct %s: field %s placed at %s, in the old struct\'s tail padding: old '
                       'programs pass struct_size %d, which covers it, with garbage there'
                       % (name, field, show(fb), a['size']))
            broke = True
        elif not sized:
            inc.append('struct %s: field %s appended, but the struct has no leading '
                       '`uint32_t struct_size` telling the library which fields a caller has'
                       % (name, field))
            broke = True
        else:
            comp.append('struct %s: field %s appended at %s (struct_size keeps old programs '
                        'working)' % (name, field, show(fb)))
    if b['align'] != a['align']:
        inc.append('struct %s: alignment %d -> %d' % (name, a['align'], b['align']))
    elif b['size'] < a['size']:
        inc.append('struct %s: size %d -> %d (shrunk)' % (name, a['size'], b['size']))
    elif b['size'] > a['size'] and not added and not broke:
        inc.append('struct %s: size %d -> %d without a new field' % (name, a['size'], b['size']))


# ---- main

BASELINE_HEAD = """\
# libpandagpt public ABI on x86_64 Linux (LP64): include/pandagpt.h and libpandagpt.so, as dumped
# by tests/abi/abi_dump.py and compared by the meson test 'abi' (suite api). Do not edit by hand;
# after a deliberate ABI change, review the test's report and run
#   PG_ABI_UPDATE=1 meson test -C <builddir> abi
# then commit this file together with the change.
"""


def content(lines):
    return [l for l in lines if l.strip() and not l.startswith('#')]


def main(argv):
    if '--' in argv:
        cut = argv.index('--')
        argv, cc = argv[:cut], argv[cut + 1:]
    else:
        cc = [os.environ.get('CC', 'cc')]
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--header', required=True)
    ap.add_argument('--lib', required=True)
    ap.add_argument('--baseline')
    ap.add_argument('--builddir', help='shown in the command that accepts a change')
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument('--check', action='store_true')
    mode.add_argument('--update', action='store_true')
    args = ap.parse_args(argv)
    if not cc:
        ap.error('no C compiler after --')
    update = args.update or (args.check and os.environ.get('PG_ABI_UPDATE') == '1')
    check = args.check and not update
    if (check or update) and not args.baseline:
        ap.error('--check and --update need --baseline')

    if (check or update) and (platform.system() != 'Linux'
                              or platform.machine() not in ('x86_64', 'AMD64')):
        print('abi: SKIPPED — the baseline describes x86_64 Linux, this host is %s %s'
              % (platform.system(), platform.machine()))
        return EXIT_SKIP

    try:
        h = parse_header(args.header)
        workdir = tempfile.mkdtemp(prefix='pandagpt-abi.')
        try:
            target, probe_lines = run_probe(args.header, h, cc, workdir)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        symbols, soname = library_facts(args.lib)
    except (AbiError, OSError) as e:
        print('abi: cannot dump the ABI: %s' % e, file=sys.stderr)
        return EXIT_ERROR
    if (check or update) and target != 'x86_64-linux-lp64':
        print('abi: SKIPPED — the baseline describes x86_64 Linux (LP64), the compiler targets '
              'something else (%s)' % ' '.join(cc))
        return EXIT_SKIP

    dump = make_dump(h, probe_lines, symbols, soname)
    problems = consistency_problems(h, symbols)
    if problems:
        print('abi: pandagpt.h and %s disagree:' % args.lib)
        for p in problems:
            print('  - ' + p)
    if not check and not update:
        sys.stdout.write('\n'.join(dump) + '\n')
        return 1 if problems else 0
    if problems:
        return 1

    builddir = args.builddir or os.path.dirname(os.path.abspath(args.lib))
    if update:
        with open(args.baseline, 'w', encoding='utf-8') as f:
            f.write(BASELINE_HEAD + '\n'.join(dump) + '\n')
        print('abi: wrote %s (%d lines)' % (args.baseline, len(dump)))
        return 0

    try:
        with open(args.baseline, encoding='utf-8') as f:
            baseline = content(f.read().splitlines())
    except OSError as e:
        print('abi: cannot read the baseline: %s' % e, file=sys.stderr)
        return EXIT_ERROR
    if baseline == dump:
        print('abi: %d facts (%d functions, %d structs, %d enums, %d symbols), as in %s'
              % (len(dump), len(h.functions), len(h.structs), len(h.enums), len(symbols),
                 os.path.relpath(args.baseline)))
        return 0

    print('abi: the public ABI differs from the baseline %s\n' % args.baseline)
    sys.stdout.writelines(difflib.unified_diff([l + '\n' for l in baseline],
                                               [l + '\n' for l in dump],
                                               'baseline', 'current', n=2))
    inc, comp, version = classify(parse_dump(baseline), parse_dump(dump))
    print()
    if inc:
        print('INCOMPATIBLE changes — programs built against the baseline would break; this needs '
              'a new SONAME major version, or undo it:')
        print(''.join('  - %s\n' % m for m in inc), end='')
    if comp:
        print('compatible additions — update the baseline:')
        print(''.join('  - %s\n' % m for m in comp), end='')
    if version:
        print('version change — update the baseline:')
        print(''.join('  - %s\n' % m for m in version), end='')
    print('\nEvery ABI change must be deliberate. If this one is, accept it with\n'
          '  PG_ABI_UPDATE=1 meson test -C %s abi\n'
          'or\n'
          '  %s %s --update --baseline %s --header %s --lib %s -- %s\n'
          'and commit tests/abi/baseline.txt with the change.'
          % (builddir, sys.executable, os.path.abspath(__file__), args.baseline,
             args.header, args.lib, ' '.join(cc)))
    return 1


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
