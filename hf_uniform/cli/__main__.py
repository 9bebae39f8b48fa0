"""``python -m hf_uniform.cli``: the ``hf-uniform`` command."""

import sys

from . import main

sys.exit(main())
