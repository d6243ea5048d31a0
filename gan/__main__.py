"""`python -m aigc_chat.gan ...` runs the GAN command without the main CLI."""

import sys

from aigc_chat.gan.cli import main

raise SystemExit(main(sys.argv[1:]))
