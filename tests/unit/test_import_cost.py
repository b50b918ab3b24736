"""What loading a run costs a process before any work: `tunewright serve`, `predict`, `export` and the
bench-infer children import tunewright.run and the deploy modules, and sklearn (with scipy, ~4 s) and pandas
(~2.5 s) are imported only where a split is drawn or a packaged dataset's frame is built."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_loading_a_run_imports_neither_sklearn_nor_pandas():
    code = ("import sys\nimport tunewright.run, tunewright.deploy.bench, tunewright.deploy.serve.engine, "
            "tunewright.deploy.onnx_export, tunewright.cli.main\n"
            "print(sorted(m for m in ('sklearn', 'scipy', 'pandas') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         env={"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_a_split_still_works_with_its_deferred_import():
    from tunewright.data.splits import train_test_split
    keep, held = train_test_split(list(range(10)), test_size=3, random_state=0)
    assert len(held) == 3 and sorted(keep + held) == list(range(10))
