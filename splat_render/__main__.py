import sys

from splat_render.cli import main

sys.exit(main())
