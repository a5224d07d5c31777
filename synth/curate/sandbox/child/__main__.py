"""Start a sandboxed child (see the package docstring).

In the sandbox: ``python -I -B _boot ROLE ...``, this file being ``_boot/__main__.py`` and
the package ``_boot/synth_sandbox_child``. Outside it, for tools and tests only:
``python -m synth.curate.sandbox.child ROLE ...``.
"""
import sys

if __package__:
    from .entry import main
else:
    # Run as a folder, which -I still puts first on sys.path: import the package from
    # it, then take the folder off again, so the code the child runs gets the
    # interpreter's own path, as it would without this launcher.
    from synth_sandbox_child.entry import main  # type: ignore[import-not-found, no-redef]
    del sys.path[0]

sys.exit(main(sys.argv[1:]))
