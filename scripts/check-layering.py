#!/usr/bin/env python3
"""Checks kiln's module layering (docs/layering.txt, docs/architecture.md).

Reads every #include in src/, frontend/ and include/kiln/, and every
<module>_dep named in a module's meson.build, and lists each one that the
dependency table does not allow, as "file:line: what". Also checks that the
table in docs/architecture.md is the one in docs/layering.txt, and that the
table has no cycle. Exit status: 0 clean, 1 violations, 2 bad table or usage.

Usage: check-layering.py [--write-doc] [SOURCE_ROOT]   (default: the parent of scripts/)
  --write-doc  first rewrite the table in docs/architecture.md from docs/layering.txt
"""
import os
import re
import sys

INCLUDE_RE = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]')
DEP_RE = re.compile(r'\b([a-z][a-z0-9]*)_dep\b')
DOC_BEGIN = '<!-- layering table: generated from docs/layering.txt; scripts/check-layering.py checks it -->'
DOC_END = '<!-- end of layering table -->'


class Module:
    def __init__(self, name, directory, planned, line):
        self.name = name
        self.dir = directory
        self.planned = planned
        self.line = line
        self.uses = []
        self.headers = []
        self.shares = []


def fail(msg):
    print(msg, file=sys.stderr)
    sys.exit(2)


def read_table(path):
    modules = {}
    order = []
    current = None
    with open(path) as f:
        for n, raw in enumerate(f, 1):
            line = raw.split('#', 1)[0].strip()
            if not line:
                continue
            words = line.split()
            where = f'{path}:{n}'
            if words[0] == 'module':
                if len(words) not in (3, 4) or (len(words) == 4 and words[3] != 'planned'):
                    fail(f'{where}: expected "module NAME DIR [planned]"')
                name = words[1]
                if name in modules:
                    fail(f'{where}: module {name} listed twice')
                current = Module(name, words[2].rstrip('/'), len(words) == 4, n)
                modules[name] = current
                order.append(name)
            elif words[0] in ('uses', 'headers', 'shares'):
                if current is None:
                    fail(f'{where}: "{words[0]}" before any "module"')
                getattr(current, words[0]).extend(words[1:])
            else:
                fail(f'{where}: unknown keyword "{words[0]}"')
    owner = {}
    for m in modules.values():
        for u in m.uses:
            if u not in modules:
                fail(f'{path}:{m.line}: module {m.name} uses unknown module {u}')
            if u == m.name:
                fail(f'{path}:{m.line}: module {m.name} uses itself')
        for h in m.headers:
            if h in owner:
                fail(f'{path}:{m.line}: kiln/{h} belongs to both {owner[h]} and {m.name}')
            owner[h] = m.name
    return modules, order, owner


def closures(modules, path):
    """Transitive `uses` of each module; fails on a cycle."""
    result = {}
    state = {}

    def visit(name, stack):
        if state.get(name) == 'done':
            return result[name]
        if state.get(name) == 'active':
            cycle = stack[stack.index(name):] + [name]
            fail(f'{path}: dependency cycle: {" -> ".join(cycle)}')
        state[name] = 'active'
        acc = set()
        for u in modules[name].uses:
            acc.add(u)
            acc |= visit(u, stack + [name])
        state[name] = 'done'
        result[name] = acc
        return acc

    for name in modules:
        visit(name, [])
    return result


def render_doc_table(modules, order):
    """The markdown table docs/architecture.md must contain."""
    rows = ['| module | directory | may use (directly; their closure too) | public headers (include/kiln/) | shared internal headers |',
            '| --- | --- | --- | --- | --- |']
    for name in order:
        m = modules[name]
        label = f'{name} (planned)' if m.planned else name
        rows.append('| {} | `{}/` | {} | {} | {} |'.format(
            label, m.dir,
            ', '.join(m.uses) or '—',
            ', '.join(m.headers) or '—',
            ', '.join(m.shares) or '—'))
    return '\n'.join(rows)


def module_of(rel, modules):
    """The module whose directory holds the repository-relative path."""
    best = None
    for m in modules.values():
        if rel == m.dir or rel.startswith(m.dir + '/'):
            if best is None or len(m.dir) > len(best.dir):
                best = m
    return best


def source_files(root, top):
    base = os.path.join(root, top)
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames[:] = sorted(d for d in dirnames if d != 'private-include')
        for fn in sorted(filenames):
            if fn.endswith(('.h', '.hpp', '.cpp', '.cc', '.c')):
                yield os.path.relpath(os.path.join(dirpath, fn), root)


def main():
    args = sys.argv[1:]
    write_doc = bool(args) and args[0] == '--write-doc'
    if write_doc:
        args = args[1:]
    root = os.path.abspath(args[0] if args else os.path.join(os.path.dirname(__file__), '..'))
    table_path = os.path.join(root, 'docs', 'layering.txt')
    modules, order, owner = read_table(table_path)
    if write_doc:
        doc = os.path.join(root, 'docs', 'architecture.md')
        text = open(doc).read()
        if DOC_BEGIN in text and DOC_END in text:
            head, rest = text.split(DOC_BEGIN, 1)
            text = head + DOC_BEGIN + '\n' + render_doc_table(modules, order) + '\n' + DOC_END + rest.split(DOC_END, 1)[1]
            with open(doc, 'w') as f:
                f.write(text)
    allowed = closures(modules, 'docs/layering.txt')
    dirs = {m.dir: m for m in modules.values()}
    problems = []

    # Every directory under src/ is a module in the table.
    for d in sorted(os.listdir(os.path.join(root, 'src'))):
        if os.path.isdir(os.path.join(root, 'src', d)) and d != 'private-include' and f'src/{d}' not in dirs:
            problems.append(f'src/{d}: directory is not a module in docs/layering.txt')
    for m in modules.values():
        exists = os.path.isdir(os.path.join(root, m.dir))
        if not m.planned and not exists:
            problems.append(f'docs/layering.txt:{m.line}: module {m.name}: {m.dir} does not exist')

    # Public headers: each file in include/kiln/ has an owner.
    inc_dir = os.path.join(root, 'include', 'kiln')
    for fn in sorted(os.listdir(inc_dir)):
        if fn not in owner:
            problems.append(f'include/kiln/{fn}: no module lists it under "headers" in docs/layering.txt')

    def check_file(rel, user):
        """user: the module the file belongs to."""
        here = os.path.dirname(os.path.join(root, rel))
        ok_modules = {user.name} | allowed[user.name]
        with open(os.path.join(root, rel), errors='replace') as f:
            for n, line in enumerate(f, 1):
                mt = INCLUDE_RE.match(line)
                if not mt:
                    continue
                kind, target = mt.groups()
                where = f'{rel}:{n}'
                if target.startswith('kiln/'):
                    h = target[len('kiln/'):]
                    o = owner.get(h)
                    if o is None:
                        problems.append(f'{where}: #include "{target}": not a public header of any module')
                    elif o not in ok_modules:
                        problems.append(f'{where}: #include "{target}": {user.name} may not use {o} '
                                        f'(docs/layering.txt: {user.name} uses {", ".join(modules[user.name].uses) or "nothing"})')
                    continue
                if kind == '<':
                    continue  # system and third-party headers
                first = target.split('/', 1)[0]
                if '/' in target and first in modules:
                    m = modules[first]
                    inner = target.split('/', 1)[1]
                    if m.name == user.name:
                        continue
                    if m.name not in ok_modules:
                        problems.append(f'{where}: #include "{target}": internal header of {m.name}, '
                                        f'which {user.name} may not use')
                    elif inner not in m.shares:
                        problems.append(f'{where}: #include "{target}": internal header of {m.name} '
                                        f'(not in its "shares"; use its public header in include/kiln/)')
                    continue
                if os.path.exists(os.path.join(here, target)):
                    continue  # next to the including file: the module's own
                problems.append(f'{where}: #include "{target}": neither kiln/..., <module>/... nor a file '
                                f'next to {os.path.basename(rel)}')

    for top in ('src', 'frontend'):
        for rel in source_files(root, top):
            m = module_of(rel, modules)
            if m is None:
                problems.append(f'{rel}: not in any module of docs/layering.txt')
                continue
            check_file(rel, m)
    for fn in sorted(os.listdir(inc_dir)):
        if fn in owner:
            check_file(f'include/kiln/{fn}', modules[owner[fn]])

    # meson: a module links only what it may use.
    for m in modules.values():
        mb = os.path.join(root, m.dir, 'meson.build')
        if not os.path.exists(mb):
            continue
        ok_modules = {m.name} | allowed[m.name]
        with open(mb) as f:
            for n, line in enumerate(f, 1):
                code = line.split('#', 1)[0]
                if re.search(r"include_directories\(\s*'\.\.'\s*\)", code):
                    problems.append(f"{m.dir}/meson.build:{n}: include_directories('..') puts every module's "
                                    f"internal headers on the path; use '../private-include/{m.name}'")
                for dep in DEP_RE.findall(code):
                    if dep in modules and dep not in ok_modules:
                        problems.append(f'{m.dir}/meson.build:{n}: {dep}_dep: {m.name} may not use {dep}')

    # docs/architecture.md shows the same table.
    doc = os.path.join(root, 'docs', 'architecture.md')
    text = open(doc).read()
    want = render_doc_table(modules, order)
    if DOC_BEGIN not in text or DOC_END not in text:
        problems.append(f'docs/architecture.md: the layering table markers are missing; it should contain:\n'
                        f'{DOC_BEGIN}\n{want}\n{DOC_END}')
    else:
        have = text.split(DOC_BEGIN, 1)[1].split(DOC_END, 1)[0].strip()
        if have != want:
            problems.append('docs/architecture.md: the layering table differs from docs/layering.txt; '
                            'replace it with:\n' + want)

    for p in problems:
        print(p)
    if problems:
        print(f'layering: {len(problems)} violation(s) (table: docs/layering.txt)', file=sys.stderr)
        return 1
    print(f'layering: ok ({len(modules)} modules)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
