"""docs/benchmarks.md is made of sections, one per benchmark script, each
between '<!-- bench:NAME -->' and '<!-- /bench:NAME -->'. A script rewrites
its own section and leaves the others as they are."""
import os
import re

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DOCS = os.path.join(TOP, "docs", "benchmarks.md")
HEAD = """# Benchmarks

Each section below is written by the benchmark named in it (`make bench`
runs them all; `--write-docs` updates this file). Figures come from the
machine and the date each section names; re-run rather than trust them
elsewhere. Ratios compare against a peer measured in the same run.

"""


def update_section(name, text):
    try:
        with open(DOCS) as f:
            doc = f.read()
    except FileNotFoundError:
        doc = HEAD
    if not doc.startswith("# Benchmarks"):
        doc = HEAD
    block = f"<!-- bench:{name} -->\n{text.strip()}\n<!-- /bench:{name} -->\n"
    rx = re.compile(rf"<!-- bench:{re.escape(name)} -->.*?"
                    rf"<!-- /bench:{re.escape(name)} -->\n?", re.S)
    if rx.search(doc):
        doc = rx.sub(lambda _: block, doc)
    else:
        doc = doc.rstrip("\n") + "\n\n" + block
    with open(DOCS, "w") as f:
        f.write(doc)
