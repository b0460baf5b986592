"""Offline stand-in for pip's get-pip.py, as ansible-test's bootstrap uses it.

ansible-test downloads get-pip.py from a host this machine cannot reach before it builds
the virtualenvs of its sanity tests. This does the same job with what is here: pip from
Python's own ensurepip, then ``pip install <the arguments ansible-test passes>`` (the
pinned pip release) from the configured package index. scripts/sanity installs it as
~/.ansible/test/cache/get_pip_<version>.py when that file is missing.
"""

import os
import subprocess
import sys

# get-pip.py's own flags, which pip install does not know.
OWN_FLAGS = {"--no-setuptools", "--no-wheel"}

import ensurepip  # noqa: E402

ensurepip.bootstrap(upgrade=True)
# ensurepip points pip at an empty config file while it runs; the install below needs the
# machine's pip configuration (index, certificates) again.
os.environ.pop("PIP_CONFIG_FILE", None)
sys.exit(subprocess.call([sys.executable, "-m", "pip", "install"]
                         + [arg for arg in sys.argv[1:] if arg not in OWN_FLAGS]))
