"""Every depth model family the installed transformers maps: input size used, output kind, orientation, exit code.

For each sample of tests/depth_zoo.py (a tiny random-weight model of one family, saved with the processor config
its published checkpoint carries) this loads it as ``convert`` does, feeds a known output map through stereoconv's
post-processing (one half 1, the other 10, in the family's own units: the right half must come out nearer), and
converts a 2-frame 96x64 clip through the command line with default settings, so at the model's own input size.
The same checks run in tests/test_model_families.py; this prints them as a table and writes them as JSON.

    python benchmarks/model_matrix.py
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from _common import TESTS, finish, machine_facts, parser, table, timed

sys.path.insert(0, str(TESTS))
from depth_zoo import MATRIX_HEADER, SAMPLES, MatrixRow, make_matrix_clip, missing_reason, run_sample


def main(argv: list[str] | None = None) -> int:
    args = parser("model_matrix", __doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args(argv)

    import torch
    import transformers

    rows: list[MatrixRow] = []
    skipped: list[tuple[str, str]] = []

    def run() -> None:
        with tempfile.TemporaryDirectory() as tmp:
            clip = make_matrix_clip(Path(tmp) / "clip.mp4")
            for k, sample in enumerate(SAMPLES):
                if (reason := missing_reason(sample)) is not None:
                    skipped.append((sample.name, reason))
                    continue
                rows.append(run_sample(sample, Path(tmp) / f"sample{k}", clip))

    seconds = timed(run)[1]

    print(f"transformers {transformers.__version__}, torch {torch.__version__}; {seconds:.0f} s\n")
    print(table([MATRIX_HEADER, *[r.cells() for r in rows]], [False] * 5 + [True]))
    for name, reason in skipped:
        print(f"skipped {name}: {reason}")
    for row in rows:
        if row.message:
            print(f"{row.name}: {row.message}")
    internal = [r.name for r in rows if "internal error" in r.message]
    print(f"\nexit 0: {sum(r.exit == 0 for r in rows)}, refused (exit 4): {sum(r.exit == 4 for r in rows)}, "
          f"other: {sum(r.exit not in (0, 4) for r in rows)}, internal errors: {len(internal)}")  # fmt: skip
    finish(args.json, {
        "machine": machine_facts({"torch": torch.__version__, "transformers": transformers.__version__}),
        "seconds": seconds,
        "rows": [vars(r) for r in rows],
        "skipped": [{"name": n, "reason": r} for n, r in skipped],
    }, "wrote")  # fmt: skip
    return 0 if not internal and all(r.exit in (0, 4) for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
