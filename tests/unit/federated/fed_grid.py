"""fed_grid: a Flower Grid that runs the ClientApp's handlers in this process, for fast, deterministic tests of
the round driver without Ray (tests/e2e/ runs the real simulation and deployment runtimes)."""
from __future__ import annotations


class LocalGrid:
    """Just enough of flwr.serverapp.Grid for the strategies and the driver: node ids, send_and_receive.
    `fail` maps a partition id to the rounds in which that client raises (a drop-out)."""

    def __init__(self, config_text: str, num_nodes: int, fail: dict | None = None, tamper=None, app=None):
        """`app`: a whole ClientApp (mods included) answers every message instead of the bare handlers."""
        from types import SimpleNamespace
        from flwr.app import Context, RecordDict
        from flwr.supercore.task_identity import TaskIdentity
        TaskIdentity.run_id, TaskIdentity.node_id, TaskIdentity.task_id = 1, 0, 1   # what a ServerApp process has set
        self.text, self.fail, self.tamper, self.app = config_text, fail or {}, tamper, app
        self.run = SimpleNamespace(run_id=1)          # Flower's legacy client manager reads grid.run.run_id
        self.replies = []                             # every reply, for tests that look at what went up
        self.contexts = {100 + k: Context(run_id=1, node_id=100 + k, node_config={"partition-id": k,
                                                                                  "num-partitions": num_nodes},
                                          state=RecordDict(), run_config={}) for k in range(num_nodes)}

    def get_node_ids(self):
        return list(self.contexts)

    def send_and_receive(self, messages, *, timeout=None):
        from flwr.app import Error, Message, MessageType
        from tunewright.federated.client import handle_evaluate, handle_train
        from tunewright.federated.privacy import clip_when_asked
        out = []
        for i, msg in enumerate(messages):
            msg.metadata.__dict__["_message_id"] = f"m{i}"
            ctx = self.contexts[msg.metadata.dst_node_id]
            pid = ctx.node_config["partition-id"]
            if self.app is not None:        # through the wire format, as in Flower's runtimes (mods edit records)
                reply = _wire(self.app(_wire(msg), ctx))
                reply.metadata.__dict__["_src_node_id"] = msg.metadata.dst_node_id
                self.replies.append(reply)
                out.append(reply)
                continue
            rnd = int(msg.content["config"]["server-round"])
            if msg.metadata.message_type == MessageType.TRAIN and rnd in self.fail.get(pid, ()):
                out.append(_error_reply(msg, f"client {pid} went away"))
                continue
            handler = handle_train if msg.metadata.message_type == MessageType.TRAIN else handle_evaluate
            reply = clip_when_asked(msg, ctx, lambda m, c: handler(m, c, self.text))
            if self.tamper and msg.metadata.message_type == MessageType.TRAIN:
                self.tamper(pid, rnd, reply)
            reply.metadata.__dict__["_src_node_id"] = msg.metadata.dst_node_id
            out.append(reply)
        return out


def _wire(msg):
    from flwr.common.serde import message_from_proto, message_to_proto
    return message_from_proto(message_to_proto(msg))


def _error_reply(msg, reason):
    from flwr.app import Error, Message
    reply = Message(Error(code=0, reason=reason), reply_to=msg)
    reply.metadata.__dict__["_src_node_id"] = msg.metadata.dst_node_id
    return reply
