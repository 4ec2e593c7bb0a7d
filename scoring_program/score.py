"""Scoring entry point, run by the platform as the `metadata` command says.

Both platforms run it the same way (no shell):

    python3 $program/score.py --input $input --output $output

``$input`` holds ``ref/`` (the phase's reference data) and ``res/`` (the
ingestion output); scores go to ``$output`` (scores.txt, scores.json,
detailed_results.html). CodaLab v1 substitutes host paths (cwd = the run
folder); Codabench substitutes /app/... paths (cwd = this folder).

Where the package comes from, first match wins:
1. ``unlearning_challenge/`` beside this file (``make bundle`` vendors it into
   the program zip, so the zip runs on its own on the competition image);
2. the installed package (a repository checkout with ``pip install -e .``,
   or the competition image);
3. ``../src`` when run from a repository checkout without installing.
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
# First match wins: the package beside this file, the installed one, ../src of a checkout.
sys.path.insert(0, HERE)
sys.path.append(os.path.join(os.path.dirname(HERE), "src"))

if __name__ == "__main__":
    try:
        from unlearning_challenge.scoring import main
    except ImportError as error:
        sys.stderr.write(
            f"scoring: cannot import unlearning_challenge.scoring ({error}); the program zip must hold "
            "the package (build it with `make bundle`) or the package must be installed\n"
        )
        sys.exit(2)
    sys.exit(main(sys.argv[1:]))
