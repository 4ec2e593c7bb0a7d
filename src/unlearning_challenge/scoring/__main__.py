import sys

from unlearning_challenge.scoring.program import main

sys.exit(main())
