"""Offline stand-in for ansible-test's pip bootstrap (get-pip 24.2).

ansible-test downloads ``get-pip-24.2.py`` from a host this machine cannot reach, and says the file
may be saved as ``~/.ansible/test/cache/get_pip_24_2.py`` instead; ``make`` copies this file there.
ansible-test runs it as ``python get_pip.py --disable-pip-version-check pip==24.2 --no-setuptools
--no-wheel``. It uses the pip wheel bundled with ``ensurepip`` to install the requested pip from the
configured package index.
"""

import ensurepip
import glob
import os
import sys


def main() -> int:
    """Install the requested pip with ensurepip's bundled wheel."""
    wheels = sorted(glob.glob(os.path.join(os.path.dirname(ensurepip.__file__), "_bundled", "pip-*.whl")))
    if not wheels:
        sys.stderr.write("ensurepip has no bundled pip wheel\n")
        return 1
    sys.path.insert(0, wheels[-1])
    from pip._internal.cli.main import main as pip_main  # pylint: disable=import-outside-toplevel

    args = [arg for arg in sys.argv[1:] if arg not in ("--no-setuptools", "--no-wheel")]
    return pip_main(["install", "--upgrade", "--force-reinstall", *args])


if __name__ == "__main__":
    sys.exit(main())
