"""Records benchmark figures in docs/benchmarks.md: one `## <section>` table per script.

Rows are keyed (e.g. by config and machine) so a re-run replaces its own row and keeps the
others, such as figures taken on a GPU that this machine cannot reproduce.
"""

import json
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOC = os.path.join(ROOT, "docs", "benchmarks.md")
STORE = os.path.join(ROOT, "docs", "benchmarks.json")


def _fmt(value):
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def upsert_row(section: str, row: dict, key: tuple[str, ...], note: str = "", doc: str = DOC):
    """Adds or replaces `row` (matched on `key` fields) in `section`, then rewrites the doc
    (docs/benchmarks.md unless another is named)."""
    store = {}
    if os.path.exists(STORE):
        with open(STORE) as f:
            store = json.load(f)
    rows = store.setdefault(section, [])
    rows[:] = [r for r in rows if tuple(r.get(k) for k in key) != tuple(row.get(k) for k in key)]
    rows.append(row)
    with open(STORE, "w") as f:
        json.dump(store, f, indent=1, sort_keys=True)
    _write_section(section, rows, note, doc)


def _write_section(section, rows, note, doc):
    columns = list(dict.fromkeys(k for r in rows for k in r))
    table = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    table += ["| " + " | ".join(_fmt(r.get(c, "")) for c in columns) + " |" for r in rows]
    body = (note + "\n\n" if note else "") + "\n".join(table) + "\n"
    replace_section(section, body, doc)


def replace_section(section: str, body: str, doc: str = DOC):
    """Replaces the text under `## section` (up to the next `## `) in `doc`."""
    text = open(doc).read() if os.path.exists(doc) else "# Benchmarks\n"
    lines = text.splitlines(keepends=True)
    head = f"## {section}\n"
    if head in lines:
        start = lines.index(head)
        end = next(
            (i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines)
        )
        lines[start:end] = [head, "\n", body, "\n"]
    else:
        lines += ["\n", head, "\n", body]
    with open(doc, "w") as f:
        f.write("".join(lines))
