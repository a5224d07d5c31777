"""The programs that run inside the sandbox, one per role.

Each sandboxed interpreter starts as ``python -I -B _boot ROLE network=0|1 procs=0|1
[NAME=FD ...]`` in its throwaway directory, where the supervisor
(:mod:`synth.curate.sandbox.supervisor`) has put a copy of this package as
``_boot/synth_sandbox_child`` and of ``__main__.py`` as ``_boot/__main__.py``. The roles
(:mod:`.entry`): ``run`` (``run_python``: the code as ``__main__``), ``serve`` and
``judge`` (``verify_code``'s two processes: :mod:`.serve`, :mod:`.judge`) and ``probe``
(what :func:`synth.curate.sandbox.containment` measures: :mod:`.probe`). Each installs
the audit hook (:mod:`.audit`) before code it did not write runs.

Every module here imports the standard library and this package only, never synth or
anything from site-packages: inside the private root synth is not there to import, and the
child must not depend on what the code it runs can change. ``tests/test_sandbox_child.py``
checks that, and unit-tests the helpers in-process.
"""
