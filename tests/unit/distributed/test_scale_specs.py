"""Every job spec in docs/scale.md parses (YAML or JSON where it is one), and its command line is a valid
torchrun invocation of a valid `tunewright train`: torchrun's own parser reads the torchrun part and
tunewright's parser the rest. The specs cannot run here (no cluster, no cloud); this is what can be checked."""
import ast
import json
import re
import shlex
from pathlib import Path

import pytest
import yaml
from torch.distributed.run import get_args_parser

from tunewright.cli.main import build_parser

DOC = Path(__file__).resolve().parents[3] / "docs" / "scale.md"
SPECS = dict(re.findall(r"<!-- spec: (\w+) -->\s*```\w*\n(.*?)```", DOC.read_text(), re.S))


def torchrun_lines(text: str) -> list[str]:
    """Each command starting at `torchrun` (shell line continuations joined)."""
    text = text.replace("\\\n", " ")
    return [m.group(0) for m in re.finditer(r"torchrun\b[^\n\"']*", text)]


def check_invocation(line: str) -> None:
    line = re.sub(r"\$\{?\w+\}?|\$\([^)]*\)", "1", line)        # shell variables: a value stands in
    tokens = shlex.split(line)
    assert tokens[0] == "torchrun"
    t = get_args_parser().parse_args(tokens[1:])
    assert t.module and t.training_script == "tunewright", line
    check_tunewright(t.training_script_args)


def check_tunewright(args: list[str]) -> None:
    a = build_parser().parse_args(args)
    assert a.command == "train" and a.config.endswith(".yaml")
    assert a.nproc_per_node == 1 and a.nnodes == 1     # under torchrun, tunewright must not launch again
    assert all("=" in o for o in a.overrides)


def test_every_platform_has_a_spec():
    assert set(SPECS) == {"slurm", "kubernetes", "sagemaker", "sagemaker_entry", "azure", "vertex", "colab"}


@pytest.mark.parametrize("name", ["slurm", "colab"])
def test_shell_specs(name):
    lines = torchrun_lines(SPECS[name])
    assert lines
    for line in lines:
        check_invocation(line)


def test_kubernetes_pytorchjob():
    job = yaml.safe_load(SPECS["kubernetes"])
    assert job["kind"] == "PyTorchJob"
    container = job["spec"]["pytorchReplicaSpecs"]["Worker"]["template"]["spec"]["containers"][0]
    check_invocation(shlex.join(container["command"]))


def test_azure_command_job():
    job = yaml.safe_load(SPECS["azure"])
    assert job["type"] == "command" and job["distribution"]["type"] == "pytorch"
    check_invocation(job["command"])


def test_vertex_custom_job():
    job = json.loads(SPECS["vertex"])
    pools = job["jobSpec"]["workerPoolSpecs"]
    assert len(pools) == 2
    for pool in pools:
        (line,) = pool["containerSpec"]["args"]
        check_invocation(line)


def test_sagemaker_estimator_and_its_entry_point():
    tree = ast.parse(SPECS["sagemaker"])
    call = next(n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "PyTorch")
    kw = {k.arg: ast.literal_eval(k.value) for k in call.keywords}
    assert kw["distribution"] == {"torch_distributed": {"enabled": True}}
    entry = ast.parse(SPECS["sagemaker_entry"])
    argv = next(ast.literal_eval(n.value) for n in ast.walk(entry)
                if isinstance(n, ast.Assign) and ast.unparse(n.targets[0]) == "sys.argv")
    assert argv[0] == "tunewright" and "run_module(\"tunewright\"" in SPECS["sagemaker_entry"]
    check_tunewright(argv[1:])                           # SageMaker runs it under its own torchrun line
