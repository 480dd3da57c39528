"""The ``admin`` user of ``zonda standalone``: made on first start, with a random password shown once.

On the first start (no user ``admin`` yet) a random password is written to
``$ZONDA_HOME/standalone_admin_password.txt`` (mode 0600 whatever the umask, written before the user exists so
the password is never lost), then the user is created with the Admin role, and the banner shows the password
once. Later starts show where the file is, never the password. A user who deleted the file, or made ``admin``
by hand, is told to log in with a user they know.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zonda.exceptions import Conflict

USERNAME = "admin"
FILE_NAME = "standalone_admin_password.txt"


@dataclass(frozen=True)
class StandaloneAdmin:
    username: str
    #: The new password when it was made by this start (show it once); None on later starts.
    new_password: str | None
    #: The file holding the password, when it exists.
    password_file: Path | None

    def banner_line(self) -> str:
        if self.new_password is not None:
            return f"log in as {self.username}, password {self.new_password} (shown once; also in {self.password_file})"
        if self.password_file is not None:
            return f"log in as {self.username}; its password is in {self.password_file}"
        return f"log in with a user from `zonda users list` ({self.username} exists; {FILE_NAME} is gone)"


def ensure_standalone_admin(engine: Any, home: Path) -> StandaloneAdmin:
    from zonda.operations.users import create_user, generate_password, user_exists
    from zonda.private_files import write_private_file

    path = home / FILE_NAME
    if user_exists(engine, USERNAME):
        return StandaloneAdmin(USERNAME, None, path if path.exists() else None)
    from zonda.masking import mask_secret

    password = generate_password()
    mask_secret(password)  # printed once on purpose; never in a log line of this process or its task processes
    write_private_file(path, password + "\n")
    try:
        create_user(engine, USERNAME, "Admin", password, actor="(standalone)")
    except Conflict:  # another process made it meanwhile: its password is not this one
        with contextlib.suppress(OSError):
            path.unlink()
        return StandaloneAdmin(USERNAME, None, None)
    return StandaloneAdmin(USERNAME, password, path)


__all__ = ["FILE_NAME", "USERNAME", "StandaloneAdmin", "ensure_standalone_admin"]
