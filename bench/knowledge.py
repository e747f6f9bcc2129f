"""Knowledge on articles the project was not tuned on, scored the way the hidden sets are: offline backends only.

Takes a slice of the shipped KorQuAD v1 dev set (articles SKIP+1 .. SKIP+N, copied verbatim into the run
folder as a SQuAD file), then `korquad-tune run` with the `rules` paraphrase and study backends (no API, nothing
shipped for these articles), every system, on the trained questions, human rephrasings and unseen facts.

    python bench/knowledge.py --skip 3 --articles 4 --out runs/bench-knowledge [--set passages_epochs=3 ...]

Prints the metrics table; the run folder holds report.md and everything else.
"""

from __future__ import annotations

import argparse
import gzip
import json
from pathlib import Path


def main() -> None:
    import yaml

    from korquad_tune.config import load_run_config
    from korquad_tune.data import shipped_dev_path
    from korquad_tune.pipeline import run_pipeline

    p = argparse.ArgumentParser()
    p.add_argument("--skip", type=int, default=3, help="articles to skip (the default run uses the first 3)")
    p.add_argument("--articles", type=int, default=4)
    p.add_argument("--out", default="runs/bench-knowledge")
    p.add_argument("--set", action="append", default=[], help="train override key=value (YAML value)")
    p.add_argument("--systems", default=None, help="comma-separated systems (default: all)")
    args = p.parse_args()

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    doc = json.loads(gzip.decompress(shipped_dev_path().read_bytes()))
    subset = out / "squad_subset.json"
    if not subset.exists():  # verbatim articles of the dev set, nothing edited
        subset.write_text(json.dumps({"version": doc["version"],
                                      "data": doc["data"][args.skip:args.skip + args.articles]},
                                     ensure_ascii=False), encoding="utf-8")
    overrides = {k: yaml.safe_load(v) for k, v in (item.split("=", 1) for item in args.set)}
    config = {"data": str(subset), "articles": None, "augment": {"backend": "rules"}, "train": overrides,
              "study": {"backend": "rules"}}
    if args.systems:
        config["systems"] = args.systems.split(",")
    config_path = out / "bench_config.yaml"
    config_path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    run_pipeline(load_run_config(config_path), out)


if __name__ == "__main__":
    main()
