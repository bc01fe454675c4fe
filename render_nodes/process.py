"""A render node in a process of its own, without Ray: what `reelfarm render` runs beside the
API and scheduler it hosts (reelfarm/node_process.py starts it).

A process of its own rather than a thread of the launcher: the node's decode, analysis and
frame copies do not share a GIL with the API and scheduler, and its imports, detector load
and encoder probe run on another core while the launcher starts its services.

Protocol on the pipes, so the launcher can start this process before its scheduler listens:
  stdin, line 1: {"node_id", "settings", "verbose"}: the node is built and serves gRPC;
  the reply, one line on what was stdout: RenderNode.info(), or {"error": "..."} when it
  cannot start;
  stdin, line 2: {"scheduler_address"}: the node registers there and heartbeats;
  stdin closing (the launcher is done with it, or died) or SIGTERM stops the node.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading

from reelfarm.stop_signals import StopSignals


def main() -> None:
    # The reply gets stdout's pipe to itself; whatever a library prints goes to stderr.
    reply = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    from render_nodes.actor import RenderNode  # the slow imports, while the launcher does its own

    line = sys.stdin.readline()
    if not line:
        return  # the launcher went away before configuring this node
    config = json.loads(line)
    logging.basicConfig(level=logging.INFO if config.get("verbose") else logging.WARNING,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")  # fmt: skip
    try:
        node = RenderNode(config["node_id"], config["settings"], scheduler_address=None)
    except Exception as exc:  # noqa: BLE001 - the launcher shows it
        reply.write(json.dumps({"error": f"{type(exc).__name__}: {exc}"}) + "\n")
        reply.flush()
        sys.exit(1)
    stop_signals = StopSignals()  # before the reply, after which the launcher may signal us
    reply.write(json.dumps(node.info()) + "\n")
    reply.flush()

    def read_launcher() -> None:
        line = sys.stdin.readline()
        if line:
            node.connect(json.loads(line)["scheduler_address"])
            sys.stdin.read()  # until the launcher closes it
        stop_signals.stop()

    threading.Thread(target=read_launcher, name="launcher", daemon=True).start()
    stop_signals.wait()
    node.shutdown()
    # The node is stopped: skip the interpreter's teardown of NumPy, PyAV, gRPC and the detector.
    os._exit(0)


if __name__ == "__main__":
    main()
