"""The process a fuzz target runs in: ``python -m tests.adversarial.fuzz_main TARGET
[libFuzzer arguments] [CORPUS_DIR]`` (tests/adversarial/fuzz_targets.py lists the targets;
``scripts/fuzz --seconds N`` runs them all for longer).

authsvc is imported under atheris's instrumentation, so libFuzzer is guided by the
coverage of the product's own code. libFuzzer ends this process when it is done.
"""

from __future__ import annotations

import sys

import atheris  # type: ignore[import-untyped]  # ships no type information

# Instrument authsvc for coverage feedback: it must be first imported inside this block.
with atheris.instrument_imports(include=["authsvc"]):
    from tests.adversarial.fuzz_targets import TARGETS


def main() -> None:
    """Run the target named by the first argument until libFuzzer's limits end it."""
    if len(sys.argv) < 2 or sys.argv[1] not in TARGETS:
        sys.exit(f"usage: fuzz_main {{{','.join(TARGETS)}}} [libFuzzer arguments] [CORPUS]")
    target = TARGETS[sys.argv.pop(1)]()
    atheris.Setup(sys.argv, target)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
