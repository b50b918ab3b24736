"""The torchrun command line, the world-size check and the thread split (no process is started here)."""
import pytest

from tunewright.cli.main import build_parser
from tunewright.distributed.env import DistributedError, World, check_expected, from_env, thread_split, worker_threads
from tunewright.distributed.launch import LaunchSpec, check, command, torchrun_args
from tunewright.errors import ConfigError


def test_single_node_command_runs_torchrun_on_python_dash_m_tunewright():
    cmd = command(LaunchSpec(nproc_per_node=2, max_restarts=1), ["train", "c.yaml", "train.lr=1"])
    i = cmd.index("torch.distributed.run")
    assert cmd[i - 1] == "-m"
    assert cmd[i + 1:i + 7] == ["--nnodes", "1", "--nproc-per-node", "2", "--max-restarts", "1"]
    assert cmd[-5:] == ["-m", "tunewright", "train", "c.yaml", "train.lr=1"]


def test_multi_node_uses_the_rendezvous_endpoint():
    args = torchrun_args(LaunchSpec(nproc_per_node=1, nnodes=2, rdzv_endpoint="10.0.0.1:29400", rdzv_id="job"))
    assert args[args.index("--rdzv-backend") + 1] == "c10d"
    assert args[args.index("--rdzv-endpoint") + 1] == "10.0.0.1:29400"
    assert "--node-rank" not in args                        # c10d numbers the nodes itself
    static = torchrun_args(LaunchSpec(1, 2, 1, "h:1", "static"))
    assert static[static.index("--node-rank") + 1] == "1"


def test_torchrun_accepts_the_flags_we_build():
    from torch.distributed.run import parse_args
    args = parse_args([*torchrun_args(LaunchSpec(2, 2, None, "127.0.0.1:29500", max_restarts=3)), "-m", "tunewright",
                       "train", "c.yaml"])
    assert (args.nnodes, args.nproc_per_node, args.max_restarts, args.module) == ("2", "2", 3, True)


@pytest.mark.parametrize("spec,env,match", [
    (LaunchSpec(nproc_per_node=0), {}, "must be >= 1"),
    (LaunchSpec(nnodes=2), {}, "--rdzv-endpoint"),
    (LaunchSpec(2, 2, None, "h:1", "static"), {}, "--node-rank"),
    (LaunchSpec(nproc_per_node=2), {"RANK": "0", "WORLD_SIZE": "2"}, "already a torchrun worker"),
])
def test_bad_launches_are_refused(spec, env, match):
    with pytest.raises(ConfigError, match=match):
        check(spec, env)


def test_fewer_workers_than_asked_for_stop():
    w = from_env({"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "1"})
    with pytest.raises(DistributedError, match="2 processes were asked for"):
        check_expected(w, {"TUNEWRIGHT_WORLD_SIZE": "2"})
    check_expected(w, {"TUNEWRIGHT_WORLD_SIZE": "1"})


def test_env_without_torchrun_is_one_process_and_restarts_are_read():
    assert from_env({}) == World()
    w = from_env({"RANK": "1", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2",
                  "TORCHELASTIC_RESTART_COUNT": "1"})
    assert (w.rank, w.world, w.local_world, w.restarts, w.launched, w.is_main) == (1, 4, 2, 1, True, False)


def test_threads_split_the_cores_and_torchruns_default_one_is_replaced(monkeypatch):
    assert thread_split(16, 2) == 8 and thread_split(2, 4) == 1
    monkeypatch.setattr("tunewright.distributed.env.cores", lambda: 8)
    w = World(rank=0, world=2, local_world=2, launched=True)
    assert worker_threads(w, None, {"OMP_NUM_THREADS": "1"})[0] == 4      # torchrun's 1: replaced by the split
    assert worker_threads(w, None, {"OMP_NUM_THREADS": "3"})[0] == 3      # the user's choice stays
    assert worker_threads(w, 2, {"OMP_NUM_THREADS": "3"})[0] == 2         # train.num_threads wins


def test_train_parser_has_the_flags():
    args = build_parser().parse_args(["train", "c.yaml", "--nproc-per-node", "2", "--nnodes", "2", "--rdzv-endpoint",
                                      "h:1", "--max-restarts", "1", "--force"])
    assert (args.nproc_per_node, args.nnodes, args.rdzv_endpoint, args.max_restarts, args.force) == (2, 2, "h:1", 1, True)


def test_restarts_get_a_fresh_rendezvous_store_per_attempt(monkeypatch):
    seen = {}
    monkeypatch.setattr("subprocess.run", lambda cmd, env: seen.update(env) or type("P", (), {"returncode": 0})())
    from tunewright.distributed.launch import launch
    launch(LaunchSpec(nproc_per_node=2, max_restarts=1), ["train", "c.yaml"], env={})
    assert seen["TORCH_DISABLE_SHARE_RDZV_TCP_STORE"] == "1" and seen["TUNEWRIGHT_WORLD_SIZE"] == "2"
    assert seen["OMP_NUM_THREADS"]
