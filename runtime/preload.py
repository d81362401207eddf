"""The imports a pipeline stage would run on first use, run before its threads start.

A stage thread never imports: :meth:`~edgepose.runtime.pipeline.Pipeline.start` calls
:func:`preload_stages` in the starting thread first. The reason is CPython's global import
lock (``_imp.acquire_lock()``, taken by every import that finds or loads a module, and on
Python 3.8 by ``importlib.import_module`` of a module already loaded too). A Ctrl-C that
lands in the main thread inside importlib, between the acquire and the ``try`` that
releases it, leaves the lock held by the main thread; inside the lock's weakref callback
the :class:`~edgepose.interrupts.Interrupt` is even swallowed ("Exception ignored in ...
cb") and the main thread goes on. The first import in a stage thread then waits forever:
``edgepose-run`` once hung that way with a stage thread in ``_imp.acquire_lock()`` while the
main thread polled the output queue. :class:`~edgepose.interrupts.Signals` (the CLIs' handler)
no longer raises inside importlib, but a library caller's own handler (Python's default
included) still may, and the ROS 2 node's subscription callback is kept import-free the same way
(``edgepose.runtime.ros.node.image_source``).

What the stages import on first use, whatever the source: numpy's lazily loaded ``linalg``
(pose normalisation, the filter, the camera-to-base transform), Pillow's image plugins and
``ImageFile`` (``Image.open`` imports the plugin of a file's extension on first use and all
of them for a file it does not recognise, such as a corrupt frame; ``Image.tobytes``, used by
the resize, imports ``ImageFile``) and what ``warnings.warn`` imports to format a warning (a
stage warns of a camera graph that cannot load or a truncated video). A source adds its own
in :meth:`~edgepose.runtime.sources.Source.preload` (OpenCV, the bag reader's generated
deserialisers). ``tests/runtime/test_stage_imports.py`` runs ``edgepose-run`` with the lock
watched and checks that no stage thread takes it.
"""
from __future__ import annotations

import importlib

from PIL import Image

#: modules that code run in the stage threads imports lazily, whatever the source
STAGE_MODULES = ("numpy.linalg", "linecache", "tracemalloc")


def load_image_plugins() -> None:
    """Import every Pillow image plugin now (``Image.init``; about 30 ms once per process)."""
    Image.init()


def preload_stages(source) -> None:
    """Run, in the calling thread, the imports the stages of a pipeline over ``source`` would
    run on first use (the module docstring lists them)."""
    for name in STAGE_MODULES:
        importlib.import_module(name)
    load_image_plugins()
    preload = getattr(source, "preload", None)  # a duck-typed source may not have it
    if preload is not None:
        preload()
