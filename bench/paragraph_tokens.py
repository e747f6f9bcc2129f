"""How long KorQuAD's paragraphs are in the default model's tokens: what `reader_max_length` has to hold.

    python bench/paragraph_tokens.py [--data ../shared/data/KorQuAD_v1.0_dev.json] [--over 950]

Prints the number of paragraphs, the ten longest (tokens) and how many exceed `--over`. No model, the tokenizer only.
"""

from __future__ import annotations

import argparse
import gzip
import json
from pathlib import Path


def main() -> None:
    from korquad_tune.data import shipped_dev_path
    from korquad_tune.models import load_tokenizer, resolve_model

    p = argparse.ArgumentParser()
    p.add_argument("--data", default=None, help="SQuAD-format file (default: the shipped dev set)")
    p.add_argument("--model", default="gemma3-270m")
    p.add_argument("--over", type=int, default=950)
    args = p.parse_args()
    raw = Path(args.data).read_bytes() if args.data else gzip.decompress(shipped_dev_path().read_bytes())
    tok = load_tokenizer(resolve_model(args.model))
    lengths = sorted(len(tok(p["context"]).input_ids) for a in json.loads(raw)["data"] for p in a["paragraphs"])
    print(json.dumps({"paragraphs": len(lengths), "longest": lengths[-10:],
                      f"over_{args.over}": sum(n > args.over for n in lengths)}))


if __name__ == "__main__":
    main()
