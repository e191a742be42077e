"""Build hook: plain Python unless PYSTACK_COMPILE=1, when mypyc compiles the kernel.

`make compiled` sets it (see pystack/lib/compiled.py for what is compiled and why). Every other
install, `pip install -e .` included, is the plain Python build.

Two more variables serve the profile-guided build that `make compiled` runs with GCC
(docs/design.md, "The compiled build"):

* ``PYSTACK_PGO=generate:DIR`` builds the kernel instrumented, to write its profile into DIR;
* ``PYSTACK_PGO=use:DIR`` builds it optimised with the profile found in DIR. Functions the
  training run never reached are optimised as without a profile (-fprofile-partial-training).
  The C that the instrumented build generated is compiled again, unchanged (GCC matches a
  profile to the code it was made from, and mypyc need not run twice): the generate step
  lists its extensions in build/mypyc-extensions.json, and the use step builds those.

The C files are compiled on every core at once (setuptools compiles an extension's files one
after another, and mypyc puts the whole kernel into one extension).
"""

import json
import os
import runpy
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


def _pgo_flags(setting: str) -> list[str]:
    mode, _, directory = setting.partition(":")
    if mode == "generate":
        return [f"-fprofile-generate={directory}"]
    if mode == "use":
        return [f"-fprofile-use={directory}", "-fprofile-partial-training",
                "-Wno-missing-profile"]
    raise SystemExit(f"PYSTACK_PGO must be generate:DIR or use:DIR, not {setting!r}")


class ParallelBuildExt(build_ext):
    """build_ext whose compiler compiles the files of one extension in parallel."""

    def build_extension(self, ext):  # noqa: ANN001 -- setuptools' signature
        compile_one = self.compiler.compile

        def compile_all(sources, *args, **kwargs):  # noqa: ANN001, ANN202
            if len(sources) < 2:
                return compile_one(sources, *args, **kwargs)
            with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
                parts = pool.map(lambda src: compile_one([src], *args, **kwargs), sources)
                return [obj for objs in parts for obj in objs]

        self.compiler.compile = compile_all
        try:
            super().build_extension(ext)
        finally:
            self.compiler.compile = compile_one


_EXT_FIELDS = ("name", "sources", "include_dirs", "define_macros", "depends",
               "extra_compile_args", "extra_link_args")


def _listed_extension(fields: dict) -> Extension:
    """An extension as the generate step listed it (JSON made its macro pairs lists)."""
    return Extension(**{**fields, "define_macros": [tuple(m) for m in fields["define_macros"]]})


def _mypyc_extensions(here: Path) -> list[Extension]:
    from mypyc.build import mypycify

    spec = runpy.run_path(str(here / "pystack" / "lib" / "compiled.py"))
    files = sorted(
        str(path.relative_to(here))
        for top in spec["COMPILED_MODULES"]
        for path in (here / top).glob("*.py")
        if path.name not in spec["EXCLUDED"])
    return mypycify(["--config-file", str(here / "mypyc.ini"), *files],
                    opt_level=os.environ.get("MYPYC_OPT_LEVEL", "3"), multi_file=True)


ext_modules = []
if os.environ.get("PYSTACK_COMPILE") == "1":
    here = Path(__file__).parent
    pgo = os.environ.get("PYSTACK_PGO", "")
    listed = here / "build" / "mypyc-extensions.json"
    if pgo.startswith("use:") and listed.exists():
        ext_modules = [_listed_extension(fields) for fields in json.loads(listed.read_text())]
    else:
        ext_modules = _mypyc_extensions(here)
        if pgo.startswith("generate:"):
            listed.write_text(json.dumps(
                [{k: getattr(ext, k) for k in _EXT_FIELDS} for ext in ext_modules]))
    # Hidden visibility: the kernel's C functions call each other directly, not through the
    # PLT as calls to exported symbols of a shared library must (only PyInit is exported;
    # the modules reach each other through capsules). -fno-plt: calls into libpython go
    # through the GOT without a stub. Together about 6% less CPU per UDP pair or echo.
    flags = ["-fvisibility=hidden", "-fno-plt", *(_pgo_flags(pgo) if pgo else [])]
    for ext in ext_modules:
        ext.extra_compile_args = [*ext.extra_compile_args, *flags]
        ext.extra_link_args = [*ext.extra_link_args, *flags]

setup(ext_modules=ext_modules, cmdclass={"build_ext": ParallelBuildExt},
      options={"build_ext": {"parallel": os.cpu_count() or 1}})
