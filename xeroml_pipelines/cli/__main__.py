import sys

from xeroml_pipelines.cli import main

sys.exit(main())
