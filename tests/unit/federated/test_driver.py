"""The round driver on tiny-bert with an in-process grid (conftest.LocalGrid): 3 clients, 2 local steps."""
import json

import numpy as np
import pytest
import torch

from tunewright.config import dump_yaml
from tunewright.federated.driver import serve
from tunewright.federated.state import load_state

from fed_grid import LocalGrid


def _serve(cfg, **kw):
    grid_kw = {k: kw.pop(k) for k in ("fail", "tamper") if k in kw}
    return serve(LocalGrid(dump_yaml(cfg), cfg.federated.num_clients, **grid_kw), cfg, **kw)


def test_only_trainable_tensors_travel(tiny_cfg):
    from tunewright.federated.client import build_runtime
    rt = build_runtime(tiny_cfg(method="lora"))
    assert rt.names and all("lora_" in n or n.startswith("head.") for n in rt.names)
    trainable = {n for n, p in rt.model.named_parameters() if p.requires_grad}
    assert set(rt.names) == trainable


def test_dropout_and_nan_update_do_not_stop_the_rounds(tiny_cfg):
    def nan_from_client_1_in_round_2(pid, rnd, reply):
        from flwr.app import Array
        if pid == 1 and rnd == 2:
            rec = reply.content["arrays"]
            k = next(iter(rec.keys()))
            bad = rec[k].numpy().copy()
            bad.flat[0] = np.nan
            rec[k] = Array(bad)

    cfg = tiny_cfg(method="lora")
    s = _serve(cfg, fail={2: {1}}, tamper=nan_from_client_1_in_round_2)
    rows = [json.loads(x) for x in open(f"{s['run_dir']}/metrics.jsonl")]
    assert [r["round"] for r in rows] == [1, 2]
    assert rows[0]["clients_aggregated"] == 2 and "dropped out" in rows[0]["rejected"][0]["reason"]
    assert rows[1]["clients_aggregated"] == 2 and rows[1]["rejected"][0]["client"] == 1
    assert "NaN" in rows[1]["rejected"][0]["reason"]
    _, tensors, _, _ = load_state(f"{s['run_dir']}/server_state")
    assert all(torch.isfinite(t).all() for t in tensors.values())
    # only the adapter and head travelled, and the run folder's model reloads for eval/predict
    assert rows[0]["bytes_received"] < 0.5 * rows[0]["model_bytes"] * 2
    from tunewright.run import evaluate_run
    assert evaluate_run(s["run_dir"])["accuracy"] == pytest.approx(s["test"]["accuracy"])


def test_round_fails_below_min_clients(tiny_cfg):
    cfg = tiny_cfg(**{"federated.min_clients": 3, "federated.rounds": 1})
    s = _serve(cfg, fail={0: {1}})
    row = json.loads(open(f"{s['run_dir']}/metrics.jsonl").readline())
    assert row["clients_aggregated"] == 0        # the global model stayed


def test_restart_resumes_at_the_next_round_with_the_same_weights(tiny_cfg, tmp_path):
    base = {"method": "lora", "federated.aggregation": "fedadam", "federated.server_lr": 0.01}
    whole = _serve(tiny_cfg(**base, run_name="whole"))
    _serve(tiny_cfg(**base, run_name="cut", **{"federated.rounds": 1}))          # the server stops after round 1
    resumed = _serve(tiny_cfg(**base, run_name="cut"), resume=True)
    rows = [json.loads(x)["round"] for x in open(f"{resumed['run_dir']}/metrics.jsonl")]
    assert rows == [1, 2]
    a, b = load_state(f"{whole['run_dir']}/server_state"), load_state(f"{resumed['run_dir']}/server_state")
    assert a[0] == b[0] == 2
    for k in a[1]:
        torch.testing.assert_close(a[1][k], b[1][k], atol=1e-6, rtol=1e-5)
    assert a[2] and all(torch.allclose(a[2][k], b[2][k], atol=1e-6) for k in a[2])   # FedAdam's moments


def test_dp_clips_updates_and_epsilon_grows(tiny_cfg):
    norms = []

    def record_norm(pid, rnd, reply):
        norms.append(reply)

    cfg = tiny_cfg(method="lora", **{"federated.dp_noise_multiplier": 0.5, "federated.dp_clipping_norm": 0.05,
                                     "federated.personalize": "head"})
    grid = LocalGrid(dump_yaml(cfg), 3, tamper=lambda pid, rnd, reply: norms.append(reply))
    sent = []
    orig = grid.send_and_receive

    def spy(messages, timeout=None):
        messages = list(messages)
        sent.extend(m for m in messages if m.metadata.message_type == "train")
        return orig(messages, timeout=timeout)
    grid.send_and_receive = spy
    s = serve(grid, cfg)
    for msg, reply in zip(sent, norms):
        g, u = msg.content["arrays"], reply.content["arrays"]
        norm = np.sqrt(sum(((u[k].numpy() - g[k].numpy()) ** 2).sum() for k in g.keys()))
        assert norm <= 0.05 * (1 + 1e-4)
    rows = [json.loads(x) for x in open(f"{s['run_dir']}/metrics.jsonl")]
    assert 0 < rows[0]["epsilon"] < rows[1]["epsilon"]
    assert rows[1]["clients_accuracy_personal"] is not None      # personalize: head reports both


def test_epsilon_from_opacus_grows_with_rounds():
    from tunewright.federated.privacy import epsilon
    e = [epsilon(1.0, r, 1e-5) for r in (1, 5, 20)]
    assert e[0] < e[1] < e[2]


@pytest.mark.parametrize("personalize", ["adapter", "head"])
def test_personal_parts_stay_home_and_both_accuracies_are_reported(tiny_cfg, personalize):
    """adapter: each client's own LoRA (`local`, beside the shared `default`) trains and never leaves it.
    head (FedPer): the head goes up (so the server can publish a whole model) but no client takes the global one.
    Every client reports its own test slice under the global model and under its personalized one."""
    from tunewright.federated.arrays import from_record, set_tensors
    from tunewright.federated.client import PERSONAL, evaluate_rows, runtime
    cfg = tiny_cfg(method="lora", **{"federated.personalize": personalize})
    replies = []
    grid = LocalGrid(dump_yaml(cfg), 3, tamper=lambda pid, rnd, reply: replies.append(reply))
    s = serve(grid, cfg)
    rt = runtime(grid.text)
    own = rt.kept
    assert own and all((".local." in n) if personalize == "adapter" else n.startswith("head.") for n in own)
    assert len(replies) == 6
    for reply in replies:                                   # what went up: exactly the tensors that travel
        assert list(reply.content["arrays"].keys()) == rt.names
    assert not any(".local." in n for n in rt.names) and any(".default." in n for n in rt.names)
    assert any(n.startswith("head.") for n in rt.names)    # the head travels in both modes
    # Each client's own part trained, stays in its per-node state, and changes its predictions.
    final_global = load_state(f"{s['run_dir']}/server_state")[1]
    batch = next(iter(torch.utils.data.DataLoader(rt.bundle.test, batch_size=8, collate_fn=rt.bundle.collate)))
    rt.model.eval()
    rows = [json.loads(x) for x in open(f"{s['run_dir']}/metrics.jsonl")]
    last = rows[-1]
    for ctx in grid.contexts.values():
        mine = from_record(ctx.state.array_records[PERSONAL])
        assert sorted(mine) == sorted(own)
        assert any(not torch.equal(mine[n], rt.initial_kept[n]) for n in own), "the client's own part did not train"
        assert any(not torch.equal(mine[n], final_global[n]) for n in own if n in final_global) or \
            personalize == "adapter"                        # FedPer: the client's head is not the global head
        pid = ctx.node_config["partition-id"]
        reported = next(c for c in last["clients"] if c["client"] == pid)
        logits = []
        for personal, key in ((rt.initial_kept, "accuracy"), (mine, "accuracy_personal")):   # global, then own
            set_tensors(rt.model, personal)
            set_tensors(rt.model, final_global, skip=r"^head\." if key == "accuracy_personal" and
                        personalize == "head" else None)
            with torch.no_grad():
                logits.append(rt.model(batch))
            m = evaluate_rows(rt, rt.client_rows(pid)[1])
            assert reported[key] == pytest.approx(m["accuracy"])
            assert reported[key.replace("accuracy", "test_loss")] == pytest.approx(m["loss"], rel=1e-5)
        assert not torch.allclose(logits[0], logits[1])
    for row in rows:
        assert sorted(c["client"] for c in row["clients"]) == [0, 1, 2]
        assert all(0 <= c["accuracy"] <= 1 and 0 <= c["accuracy_personal"] <= 1 for c in row["clients"])
        assert row["clients_accuracy_personal"] is not None
    summary = json.load(open(f"{s['run_dir']}/summary.json"))["federated"]
    assert [c["client"] for c in summary["clients"]] == [0, 1, 2]
    assert all({"accuracy", "accuracy_personal"} <= set(c) for c in summary["clients"])
    from tunewright.run import evaluate_run                 # the published global model reloads for eval
    assert evaluate_run(s["run_dir"])["accuracy"] == pytest.approx(s["test"]["accuracy"])


@pytest.mark.parametrize("personalize", ["adapter", "head"])
def test_a_client_starts_from_its_own_part_not_the_global_one(tiny_cfg, personalize, monkeypatch):
    """Without local training a client's reply is what it started from: the global shared tensors, and its own head
    (FedPer) in place of the global head; its local adapter is never in the reply."""
    from flwr.app import ConfigRecord, Context, Message, RecordDict
    from flwr.supercore.task_identity import TaskIdentity
    from tunewright.federated.arrays import from_record, to_record
    from tunewright.federated.client import PERSONAL, handle_train, runtime
    TaskIdentity.run_id, TaskIdentity.node_id, TaskIdentity.task_id = 1, 0, 1
    import tunewright.federated.client as client
    monkeypatch.setattr(client, "local_fit", lambda *a, **k: (0, 0.0))       # no training: the reply is the start
    text = dump_yaml(tiny_cfg(method="lora", **{"federated.personalize": personalize}))
    rt = runtime(text)
    params = dict(rt.model.named_parameters())
    incoming = {n: torch.full_like(params[n], 0.25) for n in rt.names}      # the global tensors, in their order
    own = {n: torch.full_like(t, -1.0) for n, t in rt.initial_kept.items()}
    ctx = Context(run_id=1, node_id=7, node_config={"partition-id": 0, "num-partitions": 3},
                  state=RecordDict({PERSONAL: to_record(own)}), run_config={})
    msg = Message(RecordDict({"arrays": to_record(incoming), "config": ConfigRecord({"server-round": 1})}),
                  dst_node_id=7, message_type="train")
    out = from_record(handle_train(msg, ctx, text).content["arrays"])
    assert list(out) == rt.names
    for n in rt.names:
        expected = own[n] if n in own else incoming[n]      # FedPer: own head; adapter: nothing of its own travels
        torch.testing.assert_close(out[n], expected)
    if personalize == "adapter":
        kept = dict(rt.model.named_parameters())
        assert all(torch.equal(kept[n].detach(), own[n]) for n in own)   # the local LoRA in use is the client's
