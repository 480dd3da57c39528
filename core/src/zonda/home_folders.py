"""The folders a new user puts files in: the DAGs folder and the plugins folder, made on the first start.

``zonda standalone``, ``zonda scheduler`` and ``zonda db init`` create them (owner-only, mode 0700, whatever the
umask), so the quick start's "save it in ``$ZONDA_HOME/dags``" works without a ``mkdir``. An existing folder is
left exactly as it is; one that cannot be made is a warning naming the folder and the setting, not a failure.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from zonda.config import Settings

log = logging.getLogger("zonda.home")

FOLDER_MODE = 0o700


def ensure_home_folders(settings: Settings) -> list[Path]:
    """Create the DAGs and plugins folders when missing; the folders this call created."""
    created: list[Path] = []
    for folder, setting in ((settings.dags_folder, "dags_folder"), (settings.plugins_folder, "plugins_folder")):
        if folder.is_dir():
            continue
        try:
            folder.mkdir(mode=FOLDER_MODE, parents=True)
            os.chmod(folder, FOLDER_MODE)  # mkdir's mode is filtered by the umask
        except FileExistsError:  # made meanwhile by another process, or a file is in the way
            if not folder.is_dir():
                log.warning("%s is not a folder; set [core] %s to a folder", folder, setting)
            continue
        except OSError as exc:
            log.warning("cannot create %s (%s); create it or set [core] %s", folder, exc.strerror, setting)
            continue
        created.append(folder)
    return created
