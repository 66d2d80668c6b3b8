"""Whether a process of this host still runs: what lets a new run clean up after a killed one
(staged files, unfinished CLI runs holding pool slots)."""

import os


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it exists
        return True
    return True
