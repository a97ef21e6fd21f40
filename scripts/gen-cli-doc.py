#!/usr/bin/env python3
"""Keeps docs/cli.md's flag lists equal to the real `kiln COMMAND --help`.

docs/cli.md has one section per command ("## kiln build", "### kiln manifest
add"...). Each holds hand-written text and one generated block, the verbatim
`--help` output between two markers:

    <!-- generated: kiln build --help -->
    ```text
    ...
    ```
    <!-- end: kiln build --help -->

Usage:
  gen-cli-doc.py KILN_BIN [DOC]          rewrite the generated blocks of DOC
                                         (default docs/cli.md); a command
                                         without a section gets one at the end
  gen-cli-doc.py --check KILN_BIN [DOC]  exit 1, naming each command, when
                                         DOC is not what the first form writes

The commands are found by walking the "Subcommands:" lists of `kiln --help`.
"""
import os
import re
import subprocess
import sys

BEGIN = '<!-- generated: {} --help -->'
END = '<!-- end: {} --help -->'
BLOCK_RE = re.compile(r'<!-- generated: (.+?) --help -->\n.*?<!-- end: \1 --help -->', re.S)


def run_help(kiln, words):
    env = dict(os.environ)
    env.pop('KILN_ROOT', None)
    r = subprocess.run([kiln] + words + ['--help'], capture_output=True, text=True, env=env)
    if r.returncode != 0:
        sys.exit(f'gen-cli-doc: `kiln {" ".join(words)} --help` exited {r.returncode}: {r.stderr.strip()}')
    return r.stdout.rstrip('\n')


def subcommands(help_text):
    names = []
    in_list = False
    for line in help_text.split('\n'):
        if line.startswith('Subcommands:'):
            in_list = True
            continue
        if in_list:
            if not line.startswith('  '):
                if line.strip():
                    in_list = False
                continue
            m = re.match(r'  (\S[^ ]*(?:, \S+)*)\s', line + ' ')
            if m and not line.startswith('   '):
                names.append(m.group(1).split(',')[0].strip())
    return names


def walk(kiln):
    """[(['build'], help), (['manifest'], help), (['manifest', 'add'], help), ...]"""
    out = []

    def visit(words):
        text = run_help(kiln, words)
        out.append((words, text))
        for sub in subcommands(text):
            visit(words + [sub])

    top = run_help(kiln, [])
    out.append(([], top))
    for sub in subcommands(top):
        visit([sub])
    return out


def block(words, text):
    key = ' '.join(['kiln'] + words)
    return f'{BEGIN.format(key)}\n```text\n{text}\n```\n{END.format(key)}'


def render(doc, commands):
    present = {m.group(1) for m in BLOCK_RE.finditer(doc)}
    helps = {' '.join(['kiln'] + w): (w, t) for w, t in commands}

    def replace(m):
        key = m.group(1)
        if key not in helps:
            return (f'{BEGIN.format(key)}\n`{key}` does not exist any more: remove this section.\n'
                    f'{END.format(key)}')
        return block(*helps[key])

    doc = BLOCK_RE.sub(replace, doc)
    missing = [(w, t) for w, t in commands if ' '.join(['kiln'] + w) not in present]
    for words, text in missing:
        key = ' '.join(['kiln'] + words)
        level = '#' * min(2 + max(len(words) - 1, 0), 4)
        first = text.split('\n', 1)[0]
        doc = doc.rstrip('\n') + f'\n\n{level} {key}\n\n{first[:1].upper() + first[1:]}.\n\n{block(words, text)}\n'
    return doc


def main():
    args = sys.argv[1:]
    check = False
    if args and args[0] == '--check':
        check = True
        args = args[1:]
    if not args or len(args) > 2:
        sys.exit(__doc__)
    kiln = args[0]
    doc_path = args[1] if len(args) > 1 else os.path.join(os.path.dirname(__file__), '..', 'docs', 'cli.md')
    old = open(doc_path).read() if os.path.exists(doc_path) else '# kiln command reference\n'
    commands = walk(kiln)
    new = render(old, commands)
    if not check:
        if new != old:
            with open(doc_path, 'w') as f:
                f.write(new)
        return 0
    if new == old:
        print(f'cli-doc: {doc_path} matches `--help` of {len(commands)} commands')
        return 0
    old_blocks = {m.group(1): m.group(0) for m in BLOCK_RE.finditer(old)}
    new_blocks = {m.group(1): m.group(0) for m in BLOCK_RE.finditer(new)}
    for key in new_blocks:
        if key not in old_blocks:
            print(f'{doc_path}: no section for `{key}`')
        elif old_blocks[key] != new_blocks[key]:
            print(f'{doc_path}: the flags of `{key}` differ from `{key} --help`')
    print(f'cli-doc: run `scripts/gen-cli-doc.py {kiln} {doc_path}` and review the diff', file=sys.stderr)
    return 1


if __name__ == '__main__':
    sys.exit(main())
