"""The `tunewright` command, or `tunewright.huge_pages.request()` from Python, asks torch's CPU allocator for
huge pages (tunewright/huge_pages.py); `import tunewright` alone changes nothing.

Each case runs in a fresh interpreter: torch reads THP_MEM_ALLOC_ENABLE once, at its first CPU
allocation, so the order of imports and allocations is the thing under test."""
import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="THP_MEM_ALLOC_ENABLE is Linux-only")


def _run(code: str, **env) -> dict:
    base = {k: v for k, v in os.environ.items() if k != "THP_MEM_ALLOC_ENABLE"}
    out = subprocess.run([sys.executable, "-c", code], env={**base, **env}, capture_output=True, text=True,
                         timeout=120, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


# `advised`: the kernel's own record (VmFlags `hg`, MADV_HUGEPAGE) for a tensor the test makes itself,
# checked independently of huge_pages.active(); AnonHugePages is what the kernel then backs it with.
REPORT = ("import json, os, torch; from tunewright import huge_pages as h; "
          "x = torch.ones(64 << 20, dtype=torch.uint8); "
          "smaps = open('/proc/self/smaps').read().split('\\n'); "
          "rows = [i for i, l in enumerate(smaps) if '-' in l.split(' ')[0] and ':' not in l.split(' ')[0] "
          "and int(l.split('-')[0], 16) <= x.data_ptr() < int(l.split(' ')[0].split('-')[1], 16)]; "
          "block = smaps[rows[0]:rows[0] + 40]; "
          "flags = next(l for l in block if l.startswith('VmFlags:')).split()[1:]; "
          "print(json.dumps({'env': os.environ.get('THP_MEM_ALLOC_ENABLE'), 'active': h.active(), "
          "'advised': 'hg' in flags, 'status': h.status()}))")


def test_import_alone_changes_nothing():
    r = _run("import tunewright, tunewright.run; " + REPORT)
    assert r["env"] is None and not r["active"] and not r["advised"]


def test_request_turns_huge_pages_on_for_tensors_made_afterwards():
    r = _run("import tunewright.huge_pages; tunewright.huge_pages.request(); " + REPORT)
    assert r["env"] == "1" and r["active"] and r["advised"]
    assert r["status"].startswith("on")


def test_the_cli_entry_point_requests_them_before_torch_loads():
    r = _run("import tunewright.cli.main; " + REPORT)
    assert r["env"] == "1" and r["active"] and r["advised"]


def test_the_users_setting_wins_and_zero_opts_out():
    r = _run("import tunewright.huge_pages; tunewright.huge_pages.request(); " + REPORT, THP_MEM_ALLOC_ENABLE="0")
    assert r["env"] == "0" and not r["active"] and not r["advised"]
    assert r["status"] == "off (THP_MEM_ALLOC_ENABLE=0)"


def test_too_late_when_torch_allocated_first_and_status_says_so():
    r = _run("import torch; torch.ones(5 << 20, dtype=torch.uint8); import tunewright.huge_pages; "
             "tunewright.huge_pages.request(); " + REPORT)
    assert r["env"] == "1"                     # asked for, but torch had already read the variable
    assert not r["active"] and not r["advised"]
    assert "not requested before torch's first CPU tensor" in r["status"]


def test_kernel_mode_reads_the_bracketed_word(tmp_path, monkeypatch):
    from tunewright import huge_pages
    f = tmp_path / "enabled"
    f.write_text("always [madvise] never\n")
    monkeypatch.setattr(huge_pages, "KERNEL_MODE", str(f))
    assert huge_pages.kernel_mode() == "madvise"
    monkeypatch.setattr(huge_pages, "KERNEL_MODE", str(tmp_path / "missing"))
    assert huge_pages.kernel_mode() is None
