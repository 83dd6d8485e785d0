from jeeves.cli import main

raise SystemExit(main())
