"""Build hook: plain Python unless PYSTACK_COMPILE=1, when mypyc compiles the kernel.

`make compiled` sets it (see pystack/lib/compiled.py for what is compiled and why). Every other
install, `pip install -e .` included, is the plain Python build.
"""

import os
import runpy
from pathlib import Path

from setuptools import setup

ext_modules = []
if os.environ.get("PYSTACK_COMPILE") == "1":
    from mypyc.build import mypycify

    here = Path(__file__).parent
    spec = runpy.run_path(str(here / "pystack" / "lib" / "compiled.py"))
    files = sorted(
        str(path.relative_to(here))
        for top in spec["COMPILED_MODULES"]
        for path in (here / top).glob("*.py")
        if path.name not in spec["EXCLUDED"])
    ext_modules = mypycify(["--config-file", str(here / "mypyc.ini"), *files],
                           opt_level=os.environ.get("MYPYC_OPT_LEVEL", "3"),
                           multi_file=True)

setup(ext_modules=ext_modules,
      options={"build_ext": {"parallel": os.cpu_count() or 1}})
