"""A4: recurrent networks and captioning (``rnn_lstm_captioning``), the Transformer (``transformer``).

The Transformer module was called ``transformers.py`` (EECS 498's name) until it was renamed:
a file of that name in the folder a notebook runs from stands in for HuggingFace's
``transformers`` package, which PyTorch itself imports when it is installed.  The old import
path ``A4_rnn_transformer.transformers`` keeps working for one release, with a
``DeprecationWarning``; no file of that name exists any more.
"""

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

_RENAMED = {f"{__name__}.transformers": f"{__name__}.transformer"}


class _RenamedModuleFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Import an old module name as the renamed module (the same module object), with a warning."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in _RENAMED:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec):
        new_name = _RENAMED[spec.name]
        warnings.warn(f"{spec.name} was renamed {new_name}; the old name goes away in the next release",
                      DeprecationWarning, stacklevel=2)
        module = importlib.import_module(new_name)
        self._own_spec = module.__spec__
        return module

    def exec_module(self, module):
        # The module has already run under its new name; the import machinery has just set its
        # __spec__ to the old name's, so give it back its own.
        module.__spec__ = self._own_spec


if not any(isinstance(finder, _RenamedModuleFinder) for finder in sys.meta_path):
    sys.meta_path.append(_RenamedModuleFinder())
