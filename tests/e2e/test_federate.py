"""`tunewright federate` in Flower's simulation runtime (Ray, 2 CPUs), and the same app in the deployment
runtime: a SuperLink and 3 SuperNodes as separate processes on loopback, driven by `flwr run`."""
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("flwr")
ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
pytestmark = pytest.mark.slow


def test_federate_cli_simulation(tmp_path):
    from tunewright.cli.main import main
    rc = main(["federate", str(ROOT / "configs/tiny.yaml"), f"output_dir={tmp_path}", "run_name=sim", "method=lora",
               "federated.num_clients=3", "federated.clients_per_round=2", "federated.rounds=2",
               "federated.local_steps=2", "federated.num_cpus=2"])
    assert rc == 0
    run = tmp_path / "sim"
    for name in ("config.yaml", "metrics.jsonl", "summary.json", "partitions.json", "model/tunewright_model.json"):
        assert (run / name).exists() or name.startswith("model/"), name
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["round"] for r in rows] == [1, 2] and all(len(r["clients"]) == 3 for r in rows)
    assert rc == 0 and main(["eval", str(run)]) == 0


def test_federate_secagg_simulation(tmp_path):
    """federated.secagg: true in Flower's simulation runtime (Ray): the legacy ServerApp path with
    DefaultWorkflow(fit_workflow=SecAggPlusWorkflow) and the ClientApp's secaggplus_mod, 2 rounds on 3 clients."""
    from tunewright.federated.driver import federate
    s = federate(str(ROOT / "configs/tiny.yaml"), [f"output_dir={tmp_path}", "run_name=secagg", "method=lora",
                                                   "federated.num_clients=3", "federated.clients_per_round=3",
                                                   "federated.rounds=2", "federated.local_steps=2",
                                                   "federated.num_cpus=2", "federated.secagg=true"])
    rows = [json.loads(x) for x in (tmp_path / "secagg/metrics.jsonl").read_text().splitlines()]
    assert [r["round"] for r in rows] == [1, 2] and all(r["clients_aggregated"] == 3 for r in rows)
    assert all(r["secagg"]["quantization_range"] == 2 ** 22 for r in rows)
    assert len(s["federated"]["accuracy_per_round"]) == 2


def _free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _stop(procs):
    """Terminate, then kill, every process we started and all their descendants: the SuperLink and the
    SuperNodes start flower-superexec in a new session, and it starts flwr-serverapp / flwr-clientapp."""
    import psutil
    tree = []
    for p in procs:
        try:
            tree += [psutil.Process(p.pid), *psutil.Process(p.pid).children(recursive=True)]
        except psutil.NoSuchProcess:
            pass
    for p in reversed(tree):
        try:
            p.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(tree, timeout=20)
    for p in alive:
        p.kill()
    psutil.wait_procs(alive, timeout=10)
    for p in procs:
        p.wait(timeout=10)          # reap our own children


def test_deployment_runtime_three_supernodes(tmp_path):
    """Flower 1.42's deployment runtime on 127.0.0.1: `flower-superlink` serves its Fleet, Control and Runtime
    APIs over HTTP on one `--host`/`--port`; each `flower-supernode` dials it with `--superlink host:port` and
    serves its own ClientApp runtime API on its own `--port`; `flwr run` names the SuperLink connection that
    $FLWR_HOME/config.toml holds. Two rounds of tiny-bert + LoRA on 3 SuperNodes."""
    cfg = tmp_path / "fed.yaml"
    cfg.write_text(((ROOT / "configs/tiny.yaml").read_text() + f"""
output_dir: {tmp_path}
run_name: deployed
method: lora
federated:
  num_clients: 3
  clients_per_round: 3
  min_clients: 2
  rounds: 2
  local_steps: 2
""").replace("tests/data/", str(ROOT / "tests/data") + "/"))      # the apps run in other folders
    link, *node_ports = _free_ports(4)
    home = tmp_path / "flwr_home"
    home.mkdir()
    (home / "config.toml").write_text(
        f'[superlink]\ndefault = "loop"\n\n[superlink.loop]\naddress = "127.0.0.1:{link}"\ninsecure = true\n')
    # flower-superlink starts flower-superexec (and it flwr-serverapp) from PATH: this venv's bin comes first.
    env = {**os.environ, "FLWR_HOME": str(home), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    logs = {name: tmp_path / f"{name}.log" for name in ["superlink"] + [f"supernode{k}" for k in range(3)]}

    def start(name, argv):
        procs.append(subprocess.Popen(argv, env=env, cwd=tmp_path, stdout=open(logs[name], "w"),
                                      stderr=subprocess.STDOUT))

    def tails():
        return "".join(f"\n--- {n}.log\n" + p.read_text()[-2500:] for n, p in logs.items() if p.exists())

    procs: list = []
    try:
        # The app's dependencies are this venv: the SuperLink must not `uv sync` them (it would need a network).
        start("superlink", [str(BIN / "flower-superlink"), "--insecure", "--host", "127.0.0.1", "--port", str(link),
                            "--disable-runtime-dependency-installation"])
        _wait_for_port(link, 60, procs[0], tails)
        for k in range(3):
            start(f"supernode{k}", [str(BIN / "flower-supernode"), "--insecure", "--superlink", f"127.0.0.1:{link}",
                                    "--host", "127.0.0.1", "--port", str(node_ports[k]),
                                    "--node-config", f"partition-id={k} num-partitions=3"])
        for k in range(3):
            _wait_for_port(node_ports[k], 60, procs[1 + k], tails)
        out = subprocess.run([str(BIN / "flwr"), "run", str(ROOT / "examples/federated_app"), "loop",
                              "--run-config", f'config="{cfg}"', "--stream"], env=env, cwd=ROOT,
                             capture_output=True, text=True, timeout=420)
        summary = tmp_path / "deployed/summary.json"
        deadline = time.time() + 60       # --stream returns when the run ends; the file is written before that
        while not summary.exists() and time.time() < deadline:
            time.sleep(1)
        assert summary.exists(), out.stdout[-3000:] + out.stderr[-3000:] + tails()
        rows = [json.loads(x) for x in (tmp_path / "deployed/metrics.jsonl").read_text().splitlines()]
        assert [r["round"] for r in rows] == [1, 2]
        assert all(r["clients_aggregated"] == 3 for r in rows)
        assert all(sorted(c["client"] for c in r["clients"]) == [0, 1, 2] for r in rows)
    finally:
        _stop(procs)


def _wait_for_port(port, seconds, proc, tails):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"{proc.args[0]} exited with {proc.returncode}" + tails())
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    raise AssertionError(f"nothing listens on 127.0.0.1:{port} after {seconds} s" + tails())
