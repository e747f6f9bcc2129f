"""Report stage: one table, one picture, one metrics file for a run folder's evaluations."""

from __future__ import annotations

from pathlib import Path

from korquad_tune import KorquadTuneError
from korquad_tune.config import SYSTEMS as SYSTEM_ORDER
from korquad_tune.evaluate import paired_tests, read_system_result
from korquad_tune.fileio import atomic_write_text, read_json, write_json
from korquad_tune.rundir import RunDir

SET_TITLES = {"trained": "trained questions (seen in training)",
              "paraphrased": "LLM paraphrases (held out)",
              "rephrased": "human rephrasings (held out)",
              "unseen": "unseen facts of trained paragraphs (held out)"}
SET_ORDER = list(SET_TITLES)
CLOSED_BOOK = ("no-aug", "aug", "passages")


def collect(run_dir: str | Path) -> dict[str, dict[str, tuple[dict, list[dict]]]]:
    """{question_set: {system: (metrics, per-question rows)}} from RUN_DIR/eval/."""
    if not Path(run_dir).is_dir():
        raise KorquadTuneError(f"{run_dir}: no such run folder; pass the folder `korquad-tune run --out` wrote")
    root = RunDir(run_dir).eval_root
    if not root.exists():
        raise KorquadTuneError(f"{root}: no evaluations yet; run `korquad-tune run` or `evaluate` first")
    results: dict = {}
    for set_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        for sys_dir in sorted(p for p in set_dir.iterdir() if p.is_dir()):
            got = read_system_result(sys_dir)
            if got:
                results.setdefault(set_dir.name, {})[sys_dir.name] = got
    order = {name: i for i, name in enumerate(SET_ORDER)}
    return dict(sorted(results.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0])))


def _ordered(systems, preferred=SYSTEM_ORDER):
    return [s for s in preferred if s in systems] + sorted(s for s in systems if s not in preferred)


def plot(results: dict, out: Path) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sets = list(results)
    systems = _ordered({s for r in results.values() for s in r})
    width = 0.8 / max(1, len(systems))
    fig, ax = plt.subplots(figsize=(1.8 + 0.45 * len(systems) * len(sets), 4.4))
    for i, system in enumerate(systems):
        xs, ems, lo, hi = [], [], [], []
        for j, name in enumerate(sets):
            if system in results[name]:
                m = results[name][system][0]
                xs.append(j + (i - (len(systems) - 1) / 2) * width)
                ems.append(m["exact_match"])
                lo.append(m["exact_match"] - m["exact_match_ci95"][0])
                hi.append(m["exact_match_ci95"][1] - m["exact_match"])
        bars = ax.bar(xs, ems, width, yerr=[lo, hi], capsize=3, label=system)
        ax.bar_label(bars, fmt="%.0f", fontsize=7, padding=2)
    ax.set_xticks(range(len(sets)), [SET_TITLES.get(s, s).replace(" (", "\n(").replace(" of ", "\nof ")
                                     for s in sets], fontsize=8)
    ax.set_ylabel("exact match (%), 95% bootstrap CI")
    ax.set_ylim(0, 125)  # headroom for the legend above the 100% bars
    ax.set_yticks(range(0, 101, 20))
    ax.legend(ncols=min(len(systems), 7), loc="upper center", fontsize=8, frameon=False)
    ax.set_title("KorQuAD exact match by system")
    fig.tight_layout()
    tmp = out.with_name(f".{out.name}.tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    tmp.replace(out)
    return out


def _table(results: dict) -> list[str]:
    sets = list(results)
    systems = _ordered({s for r in results.values() for s in r})
    head = "| system | " + " | ".join(f"{SET_TITLES.get(s, s)}: EM [95% CI] / F1" for s in sets) + " |"
    lines = [head, "|" + "---|" * (len(sets) + 1)]
    for system in systems:
        cells = []
        for s in sets:
            if system in results[s]:
                m = results[s][system][0]
                lo, hi = m["exact_match_ci95"]
                cells.append(f"{m['exact_match']:.1f} [{lo:.1f}-{hi:.1f}] / {m['f1']:.1f} (n={m['n']})")
            else:
                cells.append("-")
        lines.append(f"| {system} | " + " | ".join(cells) + " |")
    return lines


def _share_of_rag(results: dict) -> list[str]:
    """Closed-book EM as a share of rag's EM, per held-out set: how much of open-book the tuning recovers."""
    lines = []
    for s, r in results.items():
        if "rag" not in r or s == "trained":
            continue
        rag = r["rag"][0]["exact_match"]
        cells = [f"{x} {100 * r[x][0]['exact_match'] / rag:.0f}%" for x in CLOSED_BOOK if x in r and rag > 0]
        if cells:
            lines.append(f"- {SET_TITLES.get(s, s)} (rag EM {rag:.1f}): " + ", ".join(cells))
    return lines


def _misses(rows: list[dict], limit: int = 40) -> list[str]:
    wrong = [r for r in rows if not r["em"]]
    out = ["| question | prediction | gold |", "|---|---|---|"]
    for r in wrong[:limit]:
        cell = lambda s: str(s).replace("|", "\\|").replace("\n", " ")  # noqa: E731
        out.append(f"| {cell(r['question'])} | {cell(r['prediction'])} | {cell(' / '.join(r['gold']))} |")
    if len(wrong) > limit:
        out.append(f"| ... {len(wrong) - limit} more in predictions.jsonl | | |")
    return out if wrong else ["(none)"]


def _decodings(results: dict) -> list[str]:
    """How each system turned model output into an answer (`eval.decoding`), as its metrics recorded it."""
    seen: dict[str, str] = {}
    for by_system in results.values():
        for system, (metrics, _) in by_system.items():
            if metrics.get("decoding"):
                seen.setdefault(system, metrics["decoding"])
    if not seen:
        return []
    return ["Decoding (`eval.decoding`; `recall` keeps a closed-book adapter to the answers of the questions it "
            "learned that are most like the asked one, `learned` to any answer it was trained on): "
            + "; ".join(f"{system}: {seen[system]}" for system in _ordered(seen)) + ".", ""]


def write_report(run_dir: str | Path, settings: dict | None = None) -> list[Path]:
    """RUN_DIR/metrics.json, report.md and report.png from whatever evaluations exist."""
    run = RunDir(run_dir)
    if settings is None and run.config.exists():
        settings = {"yaml": run.config.read_text(encoding="utf-8")}
    results = collect(run_dir)
    tests = {s: paired_tests({k: v[1] for k, v in r.items()}) for s, r in results.items()}
    timings = read_json(run.timings) if run.timings.exists() else {}
    write_json(run.metrics, {
        "sets": {s: {k: v[0] for k, v in r.items()} for s, r in results.items()},
        "paired_mcnemar": tests, "timings_seconds": timings,
    })
    plot(results, run.report_png)
    md = ["# korquad-tune report", "",
          "Exact match (EM) and character-level F1 as in the official KorQuAD v1 evaluation script, "
          "with 95% bootstrap intervals over questions. *Trained questions* are the questions the adapters "
          "were trained on; *LLM paraphrases* ask the same facts in wordings an LLM wrote and no system trained "
          "on; *human rephrasings* are KorQuAD questions other annotators wrote for the same answer; *unseen "
          "facts* are KorQuAD questions whose answer no training question asks, about paragraphs that were "
          "trained on. `open-book` and `rag` see a paragraph in the prompt; the others answer closed-book. "
          "The intervals cover which questions were drawn, not which random seed trained an adapter: on the "
          "default articles a reseed alone changed 31 of an adapter's 114 paraphrase answers and moved its EM "
          "on 16 rephrasings by 19 points (BENCHMARKS.md, section 2b).", "",
          *_table(results), "", "![EM by system](report.png)", "",
          "## Closed-book EM as a share of rag's", "", *(_share_of_rag(results) or ["(no rag results)"]), "",
          "## Paired tests (McNemar, exact, on EM right/wrong)", ""]
    for s, ts in tests.items():
        for t in ts:
            if {t["a"], t["b"]} & {"aug", "passages"}:
                md.append(f"- {SET_TITLES.get(s, s)}: {t['a']} vs {t['b']}: only {t['a']} right {t['only_a']}, "
                          f"only {t['b']} right {t['only_b']}, p = {t['p_value']:.3g}")
    md += ["", "## Systems", "",
           "- **base**: the untuned model, same prompt, greedy.",
           "- **retrieval**: no LLM; BM25 over Kiwi morphemes of every training question (originals and "
           "paraphrases), answering with the best match's answer. The floor fine-tuning must beat.",
           "- **no-aug**: LoRA adapter trained on the original questions only.",
           "- **aug**: LoRA adapter trained on the original questions plus their paraphrases.",
           "- **passages**: LoRA adapter trained on what `aug` learns plus the training paragraphs as text and "
           "questions made from their sentences (`material.json`).",
           "- **open-book**: the `reader` adapter (trained on paragraph + question -> answer for the training "
           "questions and, with `reader_material` > 0, that many study questions per paragraph from "
           "`material.json`) given the question's own paragraph.",
           "- **rag**: the same reader given the top BM25 paragraph(s) of the training articles.", "",
           *_decodings(results)]
    if settings:
        md += ["## Settings", "", "```yaml", settings.get("yaml", "").rstrip(), "```", ""]
    if timings:
        md += ["## Timings (seconds, this machine)", "", "| stage | seconds |", "|---|---|"]
        md += [f"| {k} | {v:.0f} |" for k, v in timings.items()] + [""]
    for s, r in results.items():
        for system in ("passages", "aug", "no-aug"):
            if system in r:
                md += [f"## Misses: {system} on {SET_TITLES.get(s, s)}", "", *_misses(r[system][1]), ""]
    atomic_write_text(run.report_md, "\n".join(md) + "\n")
    return [run.report_md, run.report_png, run.metrics]
