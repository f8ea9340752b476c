"""Settings shared by the suite: the kernel, its pinned environment, default locations.

``KERNEL_ENV`` is the one place that pins what makes notebook output stable.
The suite's worker processes export it before papermill starts a kernel, and
``install_kernelspec()`` (``make install``) writes it into the venv's
``python3`` kernelspec, so nbval and Jupyter Lab kernels get it too.
"""

from __future__ import annotations

import sys
from pathlib import Path

from investigation.profiles import DEFAULT_PROFILES_DIR as DEFAULT_PROFILES_DIR

KERNEL_NAME = "python3"
KERNEL_ENV: dict[str, str] = {
    "COLUMNS": "80",  # tracebacks and wide reprs wrap the same on every terminal
    "LINES": "24",
    # the inline backend (Agg underneath): headless, and a figure a cell returns shows in Jupyter Lab too
    "MPLBACKEND": "module://matplotlib_inline.backend_inline",
    "PYTHONHASHSEED": "0",  # set and dict-of-str iteration order is fixed
    "PYDEVD_DISABLE_FILE_VALIDATION": "1",  # silences the debugger's frozen-modules note on stderr
}
CELL_TIMEOUT_S = 600
"""A cell running longer than this fails its run instead of hanging the grid."""
KERNEL_START_TIMEOUT_S = 180
"""How long a kernel may take to answer kernel_info. A worker's first forked kernel waits for
the fork server's preload imports, measured at 35 s at a load of 10 on 2 cores: papermill's own
60 s left too little room; five times the worst seen, and a hung start still fails in minutes."""

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_NOTEBOOK_DIR = REPO_ROOT / "notebooks"


def install_kernelspec() -> str:
    """Install the ``python3`` kernelspec into this interpreter's prefix with ``KERNEL_ENV``.

    Returns the directory written. Run inside the project venv, it makes every
    ``python3`` kernel of that venv use the venv's python and the pinned env.
    """
    from ipykernel.kernelspec import install

    return str(install(kernel_name=KERNEL_NAME, prefix=sys.prefix, env=dict(KERNEL_ENV)))
