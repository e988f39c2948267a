"""Sends bursts of outputs from the real tslab kernel and reports what arrived.

Driven by test/e2e/output-burst.test.ts, which asserts on the JSON this prints as its last line.
zeromq 6, which tslab publishes outputs with, sends only 512 messages in a row synchronously and
then delays one; a cell that goes on sending before it has gone out used to lose its outputs or
kill the kernel ("Socket is busy writing"). Each burst cell draws one chart in place `updates`
times without yielding, as an Animator does over a long training; a last cell checks the kernel.

usage: kernel_burst.py --notebooks DIR [--updates 700] [--bursts 2]
"""
import argparse
import json

from jupyter_client import KernelManager

BURST = """
const handle = new d2l.DisplayHandle();
for (let i = 1; i <= %d; i++) handle.show({ "text/plain": `update ${i}` });
console.log("burst done");
"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--notebooks", required=True)
    ap.add_argument("--updates", type=int, default=700)
    ap.add_argument("--bursts", type=int, default=2)
    args = ap.parse_args()
    km = KernelManager(kernel_name="d2l-ts")  # the project's kernel (scripts/lib/kernelspec.ts)
    km.start_kernel(cwd=args.notebooks)
    kc = km.client()
    kc.start_channels()
    kc.wait_for_ready(timeout=120)
    report = {"cells": [], "alive": None}

    def run(code):
        seen = {"displays": 0, "last": None, "stdout": ""}

        def hook(msg):
            kind = msg["msg_type"]
            if kind in ("display_data", "update_display_data"):
                seen["displays"] += 1
                seen["last"] = msg["content"]["data"].get("text/plain")
            elif kind == "stream":
                seen["stdout"] += msg["content"]["text"]

        try:
            reply = kc.execute_interactive(code, timeout=120, output_hook=hook)
            seen["status"] = reply["content"]["status"]
        except Exception as error:  # the kernel died or stopped answering
            seen["status"] = "no reply: %r" % (error,)
        report["cells"].append(seen)

    run('import * as d2l from "d2l";\nawait d2l.initBackend("cpu");')
    for _ in range(args.bursts):
        run(BURST % args.updates)
    run('console.log("still here");')
    report["alive"] = km.is_alive()
    km.shutdown_kernel(now=True)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
