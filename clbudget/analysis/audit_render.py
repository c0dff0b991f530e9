"""Fairness audit, part 3 of 5: the wording.  The one-line verdict of a pair and the audit as
text.

Verdict (the bytes under the claim's / runs' convention; MiB = 2**20 B):
  DER +4.1 pp at unequal memory (18.5 MiB vs 7.6 MiB); at 18.5 MiB each: +0.9 pp,
  95% CI [-0.3, 2.1], not significant
The aligned difference is a paired t-test over seeds when both methods ran the same seeds,
else Welch's t-test (`stats.py`; the result's `comparison.test` says which); "significant"
means the 95% CI excludes 0.  With one seed the CI is undefined and said to be.
"""
from __future__ import annotations

from clbudget.analysis import rows as R
from clbudget.analysis.audit_memory import budgets_equal


# ---------------------------------------------------------------- verdicts

def _digits(n_bytes) -> int:
    """Decimals of a verdict's MiB: 1 (as '18.5 MiB'), more below 1 MiB ('0.75 MiB')."""
    return 1 if n_bytes >= R.MIB else 2 if n_bytes >= R.MIB / 10 else 3


def verdict_mib(n_bytes) -> str:
    return R.format_mib(n_bytes, _digits(n_bytes))


def mib_pair(a: int, b: int) -> tuple[str, str]:
    """Both in MiB with the fewest decimals (from 1, more below 1 MiB, at most 4) that keep
    different bytes different."""
    for digits in range(_digits(min(a, b)), 5):
        sa, sb = R.format_mib(a, digits), R.format_mib(b, digits)
        if a == b or sa != sb:
            return sa, sb
    return sa, sb


def aligned_text(comparison: dict | None, missing: str = "") -> str:
    """'+0.9 pp, 95% CI [-0.3, 2.1], not significant' (a - b), or why it is not there."""
    if comparison is None or not R.finite(comparison.get("diff")):
        return f"not measured (missing cells: {missing})" if missing else "not measured"
    d = comparison["diff"]
    if not comparison["testable"]:
        return (f"{d:+.1f} pp, 95% CI undefined ({comparison['n_a']} vs {comparison['n_b']} "
                f"seeds), significance not testable")
    sig = "significant" if comparison["significant"] else "not significant"
    return f"{d:+.1f} pp, 95% CI [{comparison['ci_low']:.1f}, {comparison['ci_high']:.1f}], {sig}"


def verdict(a: str, b: str, *, aligned_bytes: int, comparison: dict | None,
            headline_pp: float | None = None, memory_a: int | None = None,
            memory_b: int | None = None, tolerance: float = 0.01, missing: str = "") -> str:
    """The one-line verdict.  With a headline (a's reported/observed lead at its own memory):
    'DER +4.1 pp at unequal memory (18.5 MiB vs 7.6 MiB); at 18.5 MiB each: <aligned>';
    without: 'DER vs iCaRL at 18.5 MiB each: <aligned>'."""
    each = f"at {verdict_mib(aligned_bytes)} each"
    tail = aligned_text(comparison, missing)
    if headline_pp is None:
        return f"{a} vs {b} {each}: {tail}"
    if memory_a is not None and memory_b is not None and not budgets_equal(memory_a, memory_b,
                                                                          tolerance):
        ma, mb = mib_pair(memory_a, memory_b)
        return f"{a} {headline_pp:+.1f} pp at unequal memory ({ma} vs {mb}); {each}: {tail}"
    if memory_a is None:
        return f"{a} {headline_pp:+.1f} pp; {each}: {tail}"
    return (f"{a} {headline_pp:+.1f} pp at equal memory ({verdict_mib(memory_a)} each); "
            f"{each}: {tail}")


# ---------------------------------------------------------------- text

def render_audit(result: dict) -> str:
    """The audit as text: per pair, memory under both conventions, verdict, flags."""
    lines = []
    if result["mode"] == "claim":
        c = result["claim"]
        head = c.get("title") or "claim"
        lines.append(f"Fairness audit of {head}" + (f" ({c['source']})" if c.get("source") else ""))
        lines.append(f"stream {c['dataset']} B{c['init']}Inc{c['inc']}, {c['num_classes']} "
                     f"classes; accuracy = {result['metric']}; verdict memory = "
                     f"{result['convention']} convention")
        for m in result["methods"]:
            mem = m["memory_bytes"]
            lines.append(f"  {m['label']:<12} reported {m['reported_accuracy_pct']:.1f}%  "
                         f"{m['backbones']} x {m['backbone']} + {m['exemplars']:,} exemplars: "
                         f"strict {mem['strict']:,} B ({R.format_mib(mem['strict'], 2)}), "
                         f"memo {mem['memo']:,} B ({R.format_mib(mem['memo'], 2)})")
    else:
        lines.append(f"Fairness audit of the store: {len(result['pairs'])} comparisons "
                     f"(accuracy = {result['metric']})")
    for p in result["pairs"]:
        lines.append("")
        ma, mb = p["memory_bytes"]["a"], p["memory_bytes"]["b"]
        fmt = lambda v: "n/a" if v is None else f"{v:,} B"
        lines.append(f"{p['label_a']} vs {p['label_b']}: memory strict {fmt(ma['strict'])} vs "
                     f"{fmt(mb['strict'])}; memo {fmt(ma['memo'])} vs {fmt(mb['memo'])}; "
                     f"{'budgets aligned' if p['aligned'] else 'budgets NOT aligned'}")
        lines.append(f"  {p['verdict']}")
        comp = p.get("comparison")
        if comp:
            lines.append(f"  test: {comp['test']} on {comp['n_a']} vs {comp['n_b']} seeds"
                         + (f", p = {comp['p_value']:.3g}" if R.finite(comp.get("p_value"))
                            else "") + (f"; {p['class_order']}" if p.get("class_order") else ""))
        for f in p["flags"]:
            lines.append(f"  ! {f['message']}")
    if result.get("sweep_commands"):
        lines += ["", "Missing cells; to produce them:"]
        lines += [f"  {cmd}" for cmd in result["sweep_commands"]]
        lines.append("  (or re-run this audit with --run --store DIR)")
    return "\n".join(lines)
