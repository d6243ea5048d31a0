from aigc_chat.cli import main

raise SystemExit(main())
