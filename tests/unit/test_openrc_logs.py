"""The reader of OpenRC services' log files (run by the container's python3): the last lines
first, then whole lines from the cursor on, a line still being written held back, a
truncated file read again from its end."""

from __future__ import annotations

import subprocess
import sys

from dpl_web.logs import OPENRC_LOG_READER


def read(lines: int, *pairs: str) -> str:
    return subprocess.run([sys.executable, "-c", OPENRC_LOG_READER, str(lines), *pairs], capture_output=True,
                          text=True, check=True).stdout


def test_the_last_lines_then_whole_new_lines_from_the_cursor(tmp_path):
    log = tmp_path / "dpl-shop_web.3000.log"
    log.write_text("one\ntwo\nthree\n")
    assert read(2, str(log), "-1", str(tmp_path / "missing.log"), "-1") == f"@file {log} 14\ntwo\nthree\n"
    with log.open("a") as out:
        out.write("four\nfi")
    assert read(2, str(log), "14") == f"@file {log} 19\nfour\n"  # "fi" is not a line yet
    with log.open("a") as out:
        out.write("ve\n")
    assert read(2, str(log), "19") == f"@file {log} 24\nfive\n"
    assert read(2, str(log), "24") == f"@file {log} 24\n"


def test_a_truncated_log_is_read_again_from_its_end(tmp_path):
    log = tmp_path / "dpl-shop_web.log"
    log.write_text("after the truncation\n")
    assert read(5, str(log), "4096") == f"@file {log} 21\nafter the truncation\n"
