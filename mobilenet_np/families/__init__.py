"""One module per MobileNet family; importing this package registers every one of them.

Each module here builds its family's ``registry.Family`` record and registers it. A new module
dropped into this folder is a new family: nothing else in the package needs to change.
"""

import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
