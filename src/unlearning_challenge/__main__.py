from unlearning_challenge.cli import main

raise SystemExit(main())
