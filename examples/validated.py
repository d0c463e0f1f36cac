"""hello.py wrapped in `wsgiref.validate.validator`, which asserts PEP 3333 on
every environ, start_response call and body the server hands it."""

import os
import sys
from wsgiref.validate import validator

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from hello import application as hello  # noqa: E402

application = validator(hello)
