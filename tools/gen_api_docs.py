#!/usr/bin/env python3
"""gen_api_docs.py — the API reference (docs/api.md) from the comments of include/pandagpt.h.

The header is the manual (docs/README.md); this script arranges it as Markdown: a table of
contents, the header's opening comment as an overview, then each section of the header (the
`/* ---- Title */` rules) with every item in it — macros, opaque handles, enums with a table of
their values, structs with a table of their fields, the callback type, and every PG_API function —
each as its declaration in a C block followed by its comment as prose. Functions declared back to
back under one comment are one item. Mentions of API names become links to their items.

While reading it checks the header (a WARNING on stderr for each; --strict makes any fatal):
  * a PG_API function, enum, struct or typedef without a comment before it;
  * an enum value or struct field without a comment;
  * a pg_* or PG_* name in any comment that the header does not declare (a stale reference);
  * a docs/*.md path in a comment that does not exist;
  * a parameter listed in a function comment's indented list ("  name  what it is") that the
    prototype does not have (a renamed or removed parameter);
  * a declaration this script cannot parse (so that nothing is left out silently).

  tools/gen_api_docs.py include/pandagpt.h -o docs/api.md     write the reference
  tools/gen_api_docs.py include/pandagpt.h --check docs/api.md  fail if that file is stale
  tools/gen_api_docs.py --self-test                             the checks on built-in headers

Python 3 standard library only; the output depends on nothing but the header's text.
"""
import argparse
import difflib
import os
import re
import sys

SOURCE_WIDTH = 100          # the header's line length: shorter lines ending a sentence end a paragraph
PARAGRAPH_SLACK = 12        # ... when the next word would have fitted with this much room to spare
STALE_MESSAGE = "docs/api.md is stale: run tools/gen_api_docs.py include/pandagpt.h -o docs/api.md"

IDENT = r"[A-Za-z_][A-Za-z0-9_]*"


# ---- Reading the header

class Comment:
    def __init__(self, lines, first, last, columns):
        self.lines = lines        # text lines, comment markers removed, relative indentation kept
        self.first = first        # 1-based line numbers in the header
        self.last = last
        self.columns = columns    # source column where each text line starts (paragraph breaks)


class Item:
    """One documented thing: a group of declarations of one kind under one comment."""

    def __init__(self, kind, line):
        self.kind = kind          # 'macro', 'opaque', 'enum', 'struct', 'callback', 'function'
        self.line = line
        self.last = line
        self.names = []
        self.decls = []           # normalised declaration text, one per name
        self.comment = None
        self.members = []         # enum: (name, value, comment); struct: (type, name, comment)
        self.params = []          # function: parameter names of every declaration of the group
        self.slug = ""


class Section:
    def __init__(self, title, body, line):
        self.title = title
        self.body = body          # Comment or None: text under the title in the rule comment
        self.line = line
        self.entries = []         # Items and floating Comments, in header order
        self.slug = ""


class Header:
    def __init__(self):
        self.overview = None
        self.sections = []
        self.warnings = []

    def warn(self, line, text):
        self.warnings.append((line, text))

    def items(self):
        for sec in self.sections:
            for e in sec.entries:
                if isinstance(e, Item):
                    yield e


def strip_comment(raw_lines, first_line):
    """The text of a /* */ comment given as its source lines."""
    texts, columns = [], []
    for k, raw in enumerate(raw_lines):
        line = raw.rstrip()
        col = 0
        if k == 0:
            col = line.index("/*") + 2
        else:
            m = re.match(r"\s*\*(?!/)", line)
            if m:
                col = m.end()
            else:                       # continuation without the ' * ' margin (field comments)
                col = len(line) - len(line.lstrip())
        text = line[col:]
        if k == 0 and text.startswith(" "):
            text, col = text[1:], col + 1
        elif k > 0 and text.startswith(" ") and col > 0 and line[col - 1] == "*":
            text, col = text[1:], col + 1
        end = text.find("*/")
        if end >= 0:
            text = text[:end]
        texts.append(text.rstrip())
        columns.append(col)
    # the closing '*/' alone on a line leaves an empty last line
    while texts and not texts[-1].strip():
        texts.pop(), columns.pop()
    while texts and not texts[0].strip():
        texts.pop(0), columns.pop(0)
    return Comment(texts, first_line, first_line + len(raw_lines) - 1, columns)


def split_params(text):
    """Parameter names of a prototype's parameter list text."""
    depth, cur, parts = 0, "", []
    for ch in text:
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    names = []
    for p in parts:
        p = p.strip()
        if not p or p == "void" or p == "...":
            continue
        m = re.search(r"\(\s*\*\s*(" + IDENT + r")\s*\)", p)     # function pointer parameter
        if m:
            names.append(m.group(1))
            continue
        p = re.sub(r"\[[^\]]*\]", "", p)
        ids = re.findall(IDENT, p)
        if ids:
            names.append(ids[-1])
    return names


def norm_space(text):
    return re.sub(r"\s+", " ", text).strip()


def wrap_decl(text, width=SOURCE_WIDTH):
    """A one-line declaration wrapped at its parameters' commas, continuation lines aligned
    after the '(' that opens the parameter list."""
    if len(text) <= width or "(" not in text:
        return text
    open_at = text.index("(")
    m = re.search(r"\(\*\s*" + IDENT + r"\)\s*\(", text)        # callback typedef
    if m:
        open_at = m.end() - 1
    head, rest = text[: open_at + 1], text[open_at + 1:]
    parts, depth, cur = [], 0, ""
    for ch in rest:
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur.strip() + ",")
            cur = ""
        else:
            cur += ch
    parts.append(cur.strip())
    indent = " " * len(head)
    lines, line = [], head
    for p in parts:
        candidate = line + ("" if line.endswith("(") else " ") + p
        if len(candidate) > width and not line.endswith("("):
            lines.append(line)
            line = indent + p
        else:
            line = candidate
    lines.append(line)
    return "\n".join(lines)


def author_layout(decl_lines, prefix):
    """The declaration as the header lays it out, less `prefix` (continuation lines shifted
    left by as much), or None when it has comments or does not line up."""
    first = decl_lines[0].rstrip()
    if "/*" in "".join(decl_lines) or not first.startswith(prefix):
        return None
    out = [first[len(prefix):]]
    for l in decl_lines[1:]:
        l = l.rstrip()
        if not l.startswith(" " * (len(prefix) + 1)):
            return None
        out.append(l[len(prefix):])
    return "\n".join(out)


def join_type_name(ctype, name):
    """'const char *' + 'f' -> 'const char *f'; 'int' + 'f' -> 'int f'."""
    ctype = norm_space(ctype)
    return ctype + name if ctype.endswith("*") else ctype + " " + name


def parse_member_lines(body_lines, first_line, kind, header, owner):
    """Enum values or struct fields with their trailing (or preceding) comments."""
    members = []
    i = 0
    pending = None
    while i < len(body_lines):
        raw = body_lines[i]
        lineno = first_line + i
        code, comment_raw = raw, None
        if "/*" in raw:
            at = raw.index("/*")
            code = raw[:at]
            comment_raw = [raw]
            j = i
            while "*/" not in body_lines[j][body_lines[j].index("/*") if j == i else 0:]:
                j += 1
                if j >= len(body_lines):
                    header.warn(lineno, "unterminated comment in %s" % owner)
                    return members
                comment_raw.append(body_lines[j])
            i = j
        i += 1
        code = code.strip()
        comment = None
        if comment_raw:
            # blank out the code before the comment so that column arithmetic stays right
            first = comment_raw[0]
            at = first.index("/*")
            comment = strip_comment([" " * at + first[at:]] + comment_raw[1:], lineno)
        if not code:
            if comment:
                pending = comment          # a comment line above the next member
            continue
        if comment is None and pending is not None:
            comment = pending
        pending = None
        if kind == "enum":
            for part in [p.strip() for p in code.split(",") if p.strip()]:
                m = re.match(r"(" + IDENT + r")\s*(?:=\s*(.+))?$", part)
                if not m:
                    header.warn(lineno, "cannot parse enum value '%s' in %s" % (part, owner))
                    continue
                value = m.group(2).strip() if m.group(2) else None
                members.append([m.group(1), value, comment, lineno])
        else:
            for decl in [d.strip() for d in code.split(";") if d.strip()]:
                d = re.sub(r"\[[^\]]*\]", lambda mm: mm.group(0).replace(" ", ""), decl)
                m = re.match(r"(.*?)(" + IDENT + r")\s*((?:\[[^\]]*\])*)$", d)
                if not m or not m.group(1).strip():
                    header.warn(lineno, "cannot parse field '%s' in %s" % (decl, owner))
                    continue
                ftype = norm_space(m.group(1)) + (m.group(3) or "")
                members.append([ftype.strip(), m.group(2), comment, lineno])
    if kind == "enum":                   # implicit values: previous + 1
        prev = -1
        for mbr in members:
            if mbr[1] is None:
                mbr[1] = str(prev + 1)
            try:
                prev = int(mbr[1], 0)
            except ValueError:
                prev = prev + 1
    return members


def parse_header(text):
    h = Header()
    lines = text.split("\n")
    n = len(lines)
    section = Section("(before the first section)", None, 1)
    h.sections.append(section)
    pending = None               # the comment just above the current line, not yet attached
    last_item = None             # the item whose declaration ended on the line above
    pp_depth = 0
    guard = None
    i = 0

    def attach(item, end_line):
        nonlocal pending, last_item
        if pending is not None and pending.last == item.line - 1:
            item.comment = pending
            pending = None
        elif pending is not None:
            section.entries.append(pending)
            pending = None
        section.entries.append(item)
        item.last = end_line
        last_item = item

    while i < n:
        line = lines[i]
        stripped = line.strip()
        lineno = i + 1
        if not stripped:
            i += 1
            continue
        if stripped.startswith("#"):
            full = stripped
            while full.endswith("\\") and i + 1 < n:
                i += 1
                full = full[:-1] + " " + lines[i].strip()
            d = re.match(r"#\s*(\w+)\s*(.*)", full)
            directive, rest = (d.group(1), d.group(2)) if d else ("", "")
            if directive in ("if", "ifdef", "ifndef"):
                pp_depth += 1
                if pp_depth == 1 and directive == "ifndef":
                    guard = rest.split()[0] if rest.split() else None
            elif directive == "endif":
                pp_depth -= 1
            elif directive == "define" and pp_depth <= 1:
                m = re.match(r"(" + IDENT + r")(\([^)]*\))?\s*(.*)", rest)
                if m and m.group(1) != guard:
                    name = m.group(1)
                    decl = "#define " + name + (m.group(2) or "") + \
                        (" " + re.sub(r"/\*.*?\*/", "", m.group(3)).strip()
                         if m.group(3).strip() else "")
                    if last_item is not None and last_item.kind == "macro" and \
                            last_item.last == lineno - 1:
                        last_item.names.append(name)
                        last_item.decls.append(decl.rstrip())
                        last_item.last = lineno
                    else:
                        item = Item("macro", lineno)
                        item.names.append(name)
                        item.decls.append(decl.rstrip())
                        attach(item, lineno)
            i += 1
            continue
        if pp_depth > 1:            # PG_API's definition, extern "C": not API items
            i += 1
            continue
        if stripped.startswith("/*"):
            j = i
            while "*/" not in lines[j][(lines[j].index("/*") + 2) if j == i else 0:]:
                j += 1
                if j >= n:
                    h.warn(lineno, "unterminated comment")
                    return h
            raw = lines[i: j + 1]
            if re.match(r"/\*\s*-{5,}", stripped):                  # a section rule
                body = strip_comment(raw, lineno)
                text_lines = [t for t in body.lines if not re.match(r"^-{5,}$", t.strip())]
                cols = [c for t, c in zip(body.lines, body.columns)
                        if not re.match(r"^-{5,}$", t.strip())]
                title = text_lines[0].strip() if text_lines else ""
                rest_lines, rest_cols = text_lines[1:], cols[1:]
                while rest_lines and not rest_lines[0].strip():
                    rest_lines.pop(0), rest_cols.pop(0)
                sec_body = Comment(rest_lines, lineno, j + 1, rest_cols) if rest_lines else None
                if pending is not None:
                    section.entries.append(pending)
                    pending = None
                section = Section(title, sec_body, lineno)
                h.sections.append(section)
            elif h.overview is None and not h.sections[0].entries and len(h.sections) == 1 \
                    and pending is None:
                h.overview = strip_comment(raw, lineno)
            else:
                if pending is not None:
                    section.entries.append(pending)
                pending = strip_comment(raw, lineno)
            last_item = None
            i = j + 1
            continue
        if stripped.startswith("}") or stripped.startswith('extern "C"'):
            i += 1
            continue
        # a declaration: up to ';' (enum/struct bodies: up to '} name;')
        j = i
        decl_lines = [lines[i]]
        if re.match(r"typedef\s+(enum|struct)\s+" + IDENT + r"\s*\{", stripped):
            while not re.match(r"\s*\}\s*" + IDENT + r"\s*;", lines[j]):
                j += 1
                if j >= n:
                    h.warn(lineno, "unterminated type definition")
                    return h
            decl_lines = lines[i: j + 1]
            kind = "enum" if stripped.startswith("typedef enum") else "struct"
            name = re.match(r"\s*\}\s*(" + IDENT + r")", lines[j]).group(1)
            item = Item(kind, lineno)
            item.names.append(name)
            item.members = parse_member_lines(lines[i + 1: j], lineno + 1, kind, h, name)
            head = re.match(r"(typedef\s+(?:enum|struct)\s+" + IDENT + r")", stripped).group(1)
            body = []
            for mbr in item.members:
                if kind == "enum":
                    body.append("    %s = %s," % (mbr[0], mbr[1]))
                else:
                    body.append("    %s;" % join_type_name(mbr[0], mbr[1]))
            if kind == "enum" and body:
                body[-1] = body[-1].rstrip(",")
            item.decls.append(head + " {\n" + "\n".join(body) + "\n} " + name + ";")
            attach(item, j + 1)
            i = j + 1
            continue
        while ";" not in lines[j].split("/*")[0]:
            j += 1
            if j >= n:
                h.warn(lineno, "unterminated declaration")
                return h
            decl_lines.append(lines[j])
        code = norm_space(" ".join(l.split("/*")[0] if "/*" in l else l for l in decl_lines))
        if "/*" in lines[j]:
            h.warn(j + 1, "a comment after a declaration is not part of the reference")
        m_fn = re.match(r"PG_API\s+(.+?)\b(" + IDENT + r")\s*\((.*)\)\s*;$", code)
        m_opaque = re.match(r"typedef\s+struct\s+(" + IDENT + r")\s+(" + IDENT + r")\s*;$", code)
        m_cb = re.match(r"typedef\s+.+\(\s*\*\s*(" + IDENT + r")\s*\)\s*\((.*)\)\s*;$", code)
        if m_fn:
            kind, name = "function", m_fn.group(2)
            decl = author_layout(decl_lines, "PG_API ") or \
                wrap_decl(join_type_name(m_fn.group(1), name) + "(" +
                          norm_space(m_fn.group(3)) + ");")
            params = split_params(m_fn.group(3))
        elif m_opaque:
            kind, name, decl, params = "opaque", m_opaque.group(2), code, []
        elif m_cb:
            kind, name = "callback", m_cb.group(1)
            decl = author_layout(decl_lines, "") or wrap_decl(code)
            params = split_params(m_cb.group(2))
        else:
            h.warn(lineno, "cannot parse declaration: %s" % code[:80])
            pending = None
            last_item = None
            i = j + 1
            continue
        # declared on the line after the previous one, with no comment between: the previous
        # comment covers both (pg_session_n_past / pg_session_n_ctx). A function joins only a
        # namesake (same pg_<object>_ prefix), so that a forgotten comment is still caught.
        if last_item is not None and last_item.kind == kind and kind in ("function", "opaque") \
                and last_item.last == lineno - 1 and \
                (kind != "function" or name.split("_")[:2] == last_item.names[0].split("_")[:2]):
            last_item.names.append(name)
            last_item.decls.append(decl)
            last_item.params.extend(params)
            last_item.last = j + 1
        else:
            item = Item(kind, lineno)
            item.names.append(name)
            item.decls.append(decl)
            item.params = params
            attach(item, j + 1)
        i = j + 1
    if pending is not None:
        section.entries.append(pending)
    if not h.sections[0].entries:
        h.sections.pop(0)
    elif len(h.sections) > 1:
        # items before the first rule (the version macros) belong with the first section
        first = h.sections.pop(0)
        h.sections[0].entries[0:0] = first.entries
    return h


# ---- Checks

def check(h, header_path):
    known = set()
    for item in h.items():
        known.update(item.names)
        if item.kind == "enum":
            known.update(m[0] for m in item.members)
    known.update(["PG_API", "PG_BUILDING_LIBRARY"])
    for item in h.items():
        what = "%s %s" % (item.kind if item.kind != "opaque" else "typedef", item.names[0])
        if item.comment is None and item.kind != "macro":
            h.warn(item.line, "%s has no comment before it" % what)
        if item.comment is None and item.kind == "macro":
            h.warn(item.line, "macro %s has no comment before it" % item.names[0])
        if item.kind in ("enum", "struct"):
            for m in item.members:
                if m[2] is None:
                    label = m[0] if item.kind == "enum" else m[1]
                    h.warn(m[3], "%s: %s %s has no comment" %
                           (item.names[0], "value" if item.kind == "enum" else "field", label))
        if item.kind == "function" and item.comment is not None:
            params = set(item.params)
            for term, _, lineno in list_terms(item.comment):
                names = [t.strip() for t in term.split(",")]
                if not all(re.fullmatch(r"[a-z_][a-z0-9_]*", t) for t in names):
                    continue
                for t in names:
                    if t not in params:
                        h.warn(lineno, "comment of %s describes parameter '%s', which %s" %
                               (", ".join(item.names), t,
                                "no prototype of the group has" if len(item.names) > 1
                                else "the prototype does not have"))
    docs_dir = os.path.join(os.path.dirname(os.path.abspath(header_path)), "..", "docs")
    for c in all_comments(h):
        for k, text in enumerate(c.lines):
            lineno = c.first + k
            for name in re.findall(r"\b(?:pg|PG)_[A-Za-z0-9_]*[A-Za-z0-9](?:_\*)?", text):
                if name.endswith("_*"):
                    if not any(k.startswith(name[:-1]) for k in known):
                        h.warn(lineno, "comment mentions %s, which matches nothing the header "
                               "declares" % name)
                elif name not in known:
                    h.warn(lineno, "comment mentions %s, which the header does not declare" % name)
            for path in re.findall(r"\bdocs/([A-Za-z0-9_.-]+\.md)\b", text):
                if not os.path.isfile(os.path.join(docs_dir, path)):
                    h.warn(lineno, "comment mentions docs/%s, which does not exist" % path)


def all_comments(h):
    if h.overview:
        yield h.overview
    for sec in h.sections:
        if sec.body:
            yield sec.body
        for e in sec.entries:
            if isinstance(e, Comment):
                yield e
            else:
                if e.comment:
                    yield e.comment
                for m in e.members:
                    if m[2] is not None:
                        yield m[2]


def list_terms(comment):
    """(term, text, line) of every indented 'term  text' list entry of a comment."""
    for block in blocks(comment):
        if block[0] == "list":
            for term, text, lineno in block[1]:
                if term is not None:
                    yield term, text, lineno


# ---- Comment text to blocks

PROSE_TOKEN = re.compile(r"\bdocs/[A-Za-z0-9_.-]+\.md\b"
                         r"|\b(?:pg|PG)_[A-Za-z0-9_]*[A-Za-z0-9](?:\(\)|_\*)?"
                         r"|(?<![\w*])\*_[a-z][a-z0-9_]*[a-z0-9]"
                         r"|</?[A-Za-z0-9_.]+>")
TERM_RE = re.compile(r"^(\S(?:.{0,28}?\S)?)\s{2,}(\S.*)$")


def indent_of(s):
    return len(s) - len(s.lstrip(" "))


def is_code_line(s):
    s = s.strip()
    return s.endswith(";") or s.endswith("{") or s == "}"


def blocks(comment):
    """The comment as blocks: ('para', [lines]), ('label', text), ('code', [lines]),
    ('list', [(term or None, text, line)])."""
    out = []
    lines, cols = comment.lines, comment.columns
    i, n = 0, len(lines)
    while i < n:
        line = lines[i]
        if not line.strip():
            i += 1
            continue
        ind = indent_of(line)
        if ind == 0:
            nxt = lines[i + 1] if i + 1 < n else ""
            if nxt.strip() and indent_of(nxt) > 0 and len(line) <= 40 and \
                    not re.search(r"[.:;,)]$", line):
                out.append(("label", line.strip()))
                i += 1
                continue
            para = [line]
            i += 1
            while i < n and lines[i].strip() and indent_of(lines[i]) == 0:
                prev, cur = lines[i - 1], lines[i]
                prev_end = cols[i - 1] + len(prev)
                first_word = cur.split()[0]
                intended = re.search(r"[.:]$", prev) and (cur[0].isupper() or cur[0] == "*") and \
                    prev_end + 1 + len(first_word) <= SOURCE_WIDTH - PARAGRAPH_SLACK
                nxt = lines[i + 1] if i + 1 < n else ""
                if intended or (nxt.strip() and indent_of(nxt) > 0 and len(cur) <= 40 and
                                not re.search(r"[.:;,)]$", cur)):
                    break
                para.append(cur)
                i += 1
            out.append(("para", para))
            continue
        # an indented block: a code sample, a list of 'term  text' entries, or indented prose
        start = i
        while i < n and lines[i].strip() and indent_of(lines[i]) > 0:
            i += 1
        chunk = lines[start:i]
        base = indent_of(chunk[0])
        if all(is_code_line(l) for l in chunk):
            out.append(("code", [l[base:] if indent_of(l) >= base else l.strip() for l in chunk]))
            continue
        entries = []
        for k, l in enumerate(chunk):
            lineno = comment.first + start + k
            body = l.strip()
            m = TERM_RE.match(body) if indent_of(l) == base else None
            if m and (entries or k == 0):
                entries.append([m.group(1), m.group(2), lineno])
            elif not entries:
                entries.append([None, body, lineno])
            else:
                entries[-1][1] += " " + body
        out.append(("list", [tuple(e) for e in entries]))
    return out


# ---- Markdown

def github_slug(text, used):
    s = text.strip().lower()
    s = re.sub(r"[^\w\- ]", "", s)
    s = s.replace(" ", "-")
    base, k = s, 1
    while s in used:
        s = "%s-%d" % (base, k)
        k += 1
    used.add(s)
    return s


class Renderer:
    def __init__(self, h):
        self.h = h
        self.links = {}           # API name -> slug of its item
        self.values = set()       # enum values and macros: code spans, no link

    def inline(self, text, self_names=(), table=False):
        """Comment prose as Markdown: author's `code` kept, API names linked, the rest escaped."""
        out = []
        for k, part in enumerate(re.split(r"(`[^`]*`)", text)):
            if k % 2 == 1:
                out.append(part.replace("|", "\\|") if table else part)
                continue
            out.append(self.prose(part, self_names, table))
        return "".join(out)

    def prose(self, text, self_names, table):
        pieces = []
        pos = 0
        for m in PROSE_TOKEN.finditer(text):
            pieces.append(self.escape(text[pos:m.start()], table))
            word = m.group(0)
            if word.startswith("docs/"):
                pieces.append("[%s](%s)" % (word, word[len("docs/"):]))
            elif word.startswith("<") or "*" in word:       # <s>, <0xNN>; pg_media_*, *_free
                pieces.append("`%s`" % word)
            else:
                name = word[:-2] if word.endswith("()") else word
                if name in self.links and name not in self_names:
                    pieces.append("[`%s`](#%s)" % (word, self.links[name]))
                else:
                    pieces.append("`%s`" % word)
            pos = m.end()
        pieces.append(self.escape(text[pos:], table))
        return "".join(pieces)

    @staticmethod
    def escape(text, table):
        text = text.replace("\\", "\\\\").replace("*", "\\*").replace("<", "\\<")
        text = re.sub(r"(?<![\w])_", "\\_", text)
        text = re.sub(r"\](?=[(\[])", "\\]", text)        # no accidental [text](link)
        if table:
            text = text.replace("|", "\\|")
        return text

    def type_code(self, ctype):
        """A C type as code, linked to its item when it is an API type."""
        base = re.sub(r"\b(const|struct)\b|\*", "", ctype).strip()
        if base in self.links:
            return "[`%s`](#%s)" % (ctype, self.links[base])
        return "`%s`" % ctype

    def render_comment(self, comment, self_names=(), label_level=None):
        md = []
        for kind, data in blocks(comment):
            if kind == "label":
                if label_level:
                    md.append("#" * label_level + " " + data)
                else:
                    md.append("**%s**" % self.inline(data, self_names))
            elif kind == "para":
                text = " ".join(l.strip() for l in data)
                # the list of errors reads best as a paragraph of its own
                parts = re.split(r"(?<=[.)]) (?=Errors: )", text)
                for p in parts:
                    if p.startswith("Errors: "):
                        md.append("**Errors:** " + self.inline(p[len("Errors: "):], self_names))
                    else:
                        md.append(self.inline(p, self_names))
            elif kind == "code":
                md.append("```c\n" + "\n".join(data) + "\n```")
            else:
                rows = []
                plain = all(term is None for term, _, _ in data)
                if plain:
                    md.append(self.inline(" ".join(t for _, t, _ in data), self_names))
                    continue
                for term, text, _ in data:
                    if term is None:
                        rows.append("- " + self.inline(text, self_names))
                    elif re.fullmatch(r"[\w*]+(?:, [\w*]+)*", term):
                        code = ", ".join(self.term_code(t, self_names)
                                         for t in term.split(", "))
                        rows.append("- %s — %s" % (code, self.inline(text, self_names)))
                    else:
                        rows.append("- **%s** — %s" % (self.inline(term, self_names),
                                                        self.inline(text, self_names)))
                md.append("\n".join(rows))
        return "\n\n".join(md)

    def term_code(self, t, self_names):
        if t in self.links and t not in self_names:
            return "[`%s`](#%s)" % (t, self.links[t])
        return "`%s`" % t

    def render(self, header_name):
        h = self.h
        used = set()
        out = []
        title = "libpandagpt API reference"
        github_slug(title, used)
        github_slug("Contents", used)
        if h.overview:
            github_slug("Overview", used)
            for kind, data in blocks(h.overview):
                if kind == "label":
                    github_slug(data, used)
        for sec in h.sections:
            sec.slug = github_slug(sec.title, used)
            for e in sec.entries:
                if isinstance(e, Item):
                    e.slug = github_slug(self.item_heading(e).replace("`", ""), used)
                    for name in e.names:
                        self.links[name] = e.slug
        out.append("# " + title)
        out.append("<!-- Generated by tools/gen_api_docs.py from %s: do not edit. -->" % header_name)
        out.append("Generated from `%s`, whose comments are the reference manual, by "
                   "`tools/gen_api_docs.py`; after changing the header run "
                   "`tools/gen_api_docs.py include/pandagpt.h -o docs/api.md` (the test "
                   "`docs_api` fails while this file is stale). What each status code means and "
                   "what to do about it: [errors.md](errors.md); what may be shared between "
                   "threads: [threading.md](threading.md)." % header_name)
        out.append("## Contents")
        toc = []
        if h.overview:
            toc.append("- [Overview](#overview)")
        for sec in h.sections:
            names = []
            for e in sec.entries:
                if isinstance(e, Item):
                    names.extend("[`%s`](#%s)" % (n, e.slug) for n in e.names)
            toc.append("- [%s](#%s)" % (self.escape(sec.title, False), sec.slug) +
                       (": " + ", ".join(names) if names else ""))
        out.append("\n".join(toc))
        if h.overview:
            out.append("## Overview")
            out.append(self.render_comment(h.overview, label_level=3))
        for sec in h.sections:
            out.append("## " + sec.title)
            if sec.body:
                out.append(self.render_comment(sec.body))
            for e in sec.entries:
                if isinstance(e, Comment):
                    out.append(self.render_comment(e))
                else:
                    out.extend(self.render_item(e))
        return "\n\n".join(out).rstrip() + "\n"

    @staticmethod
    def item_heading(item):
        return ", ".join("`%s`" % n for n in item.names)

    def render_item(self, item):
        out = ["### " + self.item_heading(item)]
        out.append("```c\n" + "\n".join(item.decls) + "\n```")
        if item.comment:
            out.append(self.render_comment(item.comment, item.names))
        if item.kind == "enum" and item.members:
            rows = ["| value | name | meaning |", "|---:|---|---|"]
            for name, value, comment, _ in item.members:
                rows.append("| %s | `%s` | %s |" % (value, name, self.cell(comment, item.names)))
            out.append("\n".join(rows))
        elif item.kind == "struct" and item.members:
            rows = ["| field | type | meaning |", "|---|---|---|"]
            for ftype, name, comment, _ in item.members:
                rows.append("| `%s` | %s | %s |" % (name, self.type_code(ftype),
                                                     self.cell(comment, item.names)))
            out.append("\n".join(rows))
        return out

    def cell(self, comment, self_names):
        if comment is None:
            return ""
        return self.inline(" ".join(l.strip() for l in comment.lines), self_names, table=True)


# ---- Self-test: the checks on small headers, each with the warnings it must give

SELF_TEST_BASE = """/*
 * t.h — a header for the self-test.
 */
#ifndef T_H
#define T_H
/* The version. */
#define PG_VERSION_MAJOR 1
#define PG_VERSION_MINOR 2
/* ---------------------------------------------------------------
 * Things
 * ------------------------------------------------------------- */
/* Result codes. See docs/real.md. */
typedef enum pg_status {
    PG_OK = 0,              /* success */
    PG_ERR_X = 1            /* failure */
} pg_status;
/* Options. */
typedef struct pg_opts {
    uint32_t struct_size;   /* size */
    int32_t n;              /* count */
} pg_opts;
/* Does one thing; see pg_two.
 *   a, b  the inputs
 *   out   the result
 * Errors: PG_ERR_X. */
PG_API pg_status pg_one(int a, int b, int *out);
/* Counts, and its twin. */
PG_API int pg_two(void);
PG_API int pg_two_b(void);
#endif
"""

SELF_TEST_CASES = [
    # (name, (old, new) edits of the base header, warnings expected: substrings, in line order)
    ("clean", [], []),
    ("function without comment", [("/* Counts, and its twin. */\n", "")],
     ["function pg_two has no comment"]),
    ("enum value without comment", [("    PG_ERR_X = 1            /* failure */", "    PG_ERR_X = 1")],
     ["value PG_ERR_X has no comment"]),
    ("field without comment", [("    int32_t n;              /* count */", "    int32_t n;")],
     ["field n has no comment"]),
    ("struct without comment", [("/* Options. */\n", "")], ["struct pg_opts has no comment"]),
    ("stale function name", [("see pg_two.", "see pg_three.")],
     ["mentions pg_three, which the header does not declare"]),
    ("stale constant", [("Errors: PG_ERR_X.", "Errors: PG_ERR_Y.")],
     ["mentions PG_ERR_Y, which the header does not declare"]),
    ("stale wildcard", [("see pg_two.", "see pg_two and pg_zz_*.")],
     ["mentions pg_zz_*, which matches nothing"]),
    ("missing doc", [("docs/real.md", "docs/gone.md")], ["mentions docs/gone.md, which does not exist"]),
    ("renamed parameter", [("int a, int b, int *out", "int a, int c, int *out")],
     ["describes parameter 'b', which the prototype does not have"]),
    ("unparsed declaration", [("#endif\n", "int pg_hidden(void);\n#endif\n")],
     ["cannot parse declaration: int pg_hidden(void);"]),
]


def self_test():
    import tempfile
    failures = 0
    with tempfile.TemporaryDirectory() as root:
        os.mkdir(os.path.join(root, "include"))
        os.mkdir(os.path.join(root, "docs"))
        open(os.path.join(root, "docs", "real.md"), "w").close()
        path = os.path.join(root, "include", "t.h")
        for name, edits, expected in SELF_TEST_CASES:
            text = SELF_TEST_BASE
            for old, new in edits:
                assert text.count(old) == 1, (name, old)
                text = text.replace(old, new)
            with open(path, "w") as f:
                f.write(text)
            h = parse_header(text)
            check(h, path)
            got = [msg for _, msg in sorted(set(h.warnings))]
            ok = len(got) == len(expected) and all(e in g for e, g in zip(expected, got))
            if name == "clean" and ok:
                md = Renderer(h).render("include/t.h")
                for want in ("### `pg_two`, `pg_two_b`", "- `a`, `b` — the inputs",
                             "| 1 | `PG_ERR_X` | failure |", "[docs/real.md](real.md)",
                             "see [`pg_two`](#pg_two-pg_two_b)", "**Errors:** `PG_ERR_X`."):
                    if want not in md:
                        ok = False
                        got.append("rendering lacks: " + want)
            print("%s: %s" % ("ok  " if ok else "FAIL", name))
            if not ok:
                failures += 1
                print("    expected: %s\n    got:      %s" % (expected, got))
    return 1 if failures else 0


# ---- Command line

def main(argv=None):
    ap = argparse.ArgumentParser(description="Write docs/api.md from the comments of "
                                 "include/pandagpt.h, checking them on the way.")
    ap.add_argument("header", nargs="?", help="include/pandagpt.h")
    ap.add_argument("-o", "--output", help="write the Markdown here (default: stdout)")
    ap.add_argument("--check", metavar="FILE",
                    help="compare with FILE instead of writing; exit 1 when it differs")
    ap.add_argument("--strict", action="store_true", help="exit 1 when there is any warning")
    ap.add_argument("--self-test", action="store_true",
                    help="run the checks on small built-in headers and exit")
    args = ap.parse_args(argv)
    if args.self_test:
        return self_test()
    if not args.header:
        ap.error("the header is required")

    with open(args.header, encoding="utf-8") as f:
        text = f.read()
    h = parse_header(text)
    check(h, args.header)
    header_name = "include/" + os.path.basename(args.header)
    md = Renderer(h).render(header_name)
    for lineno, msg in sorted(set(h.warnings)):
        print("%s:%d: WARNING: %s" % (args.header, lineno, msg), file=sys.stderr)

    if args.check:
        try:
            with open(args.check, encoding="utf-8") as f:
                old = f.read()
        except OSError as e:
            print("%s (%s)" % (STALE_MESSAGE, e), file=sys.stderr)
            return 1
        if old != md:
            print(STALE_MESSAGE, file=sys.stderr)
            diff = list(difflib.unified_diff(old.splitlines(), md.splitlines(),
                                             "docs/api.md (committed)", "docs/api.md (header)",
                                             lineterm="", n=1))
            for line in diff[:40]:
                print(line, file=sys.stderr)
            if len(diff) > 40:
                print("... (%d more diff lines)" % (len(diff) - 40), file=sys.stderr)
            return 1
    elif args.output:
        tmp = args.output + ".tmp"
        with open(tmp, "w", encoding="utf-8", newline="\n") as f:
            f.write(md)
        os.replace(tmp, args.output)
    else:
        sys.stdout.write(md)
    if args.strict and h.warnings:
        print("%s: %d warning(s), --strict" % (args.header, len(set(h.warnings))),
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
