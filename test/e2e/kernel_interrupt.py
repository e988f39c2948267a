"""Presses Stop in the real tslab kernel, as Jupyter's front ends do, and reports what follows.

Driven by test/e2e/interrupt.test.ts, which asserts on the JSON this prints as its last line.
The kernel is started and interrupted through jupyter_client's KernelManager (interrupt_kernel
sends the kernel SIGINT, what the Stop button does). Scenarios:

- training: d2l.trainCh3 on Fashion-MNIST (scratch softmax regression), interrupted at each of
  the given moments (a fraction of an epoch, measured first, after the chart drew so many epochs:
  forward pass, gradient, update, evaluation, chart redraw fall at different moments); after each,
  the same trainCh3 with 2 epochs, and tf.memory().numTensors;
- tidy: a learner's plain cell looping inside tf.tidy (with a product split across threads),
  interrupted, then trainCh3 again;
- download: a fresh kernel loading Fashion-MNIST from an HTTP server on 127.0.0.1 that stalls
  halfway through a file, interrupted, then loading again from a server that answers.

usage: kernel_interrupt.py --notebooks DIR --data DIR [--moments 0:0.05,1:0.4,...]
"""
import argparse
import http.server
import json
import os
import shutil
import tempfile
import threading
import time

from jupyter_client import KernelManager


class Kernel:
    def __init__(self, cwd):
        self.km = KernelManager(kernel_name="d2l-ts")  # the project's kernel (scripts/lib/kernelspec.ts)
        self.km.start_kernel(cwd=cwd)
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=120)

    def run(self, code, timeout=300, interrupt_after=None, interrupt_when=None, after_points=0):
        """Executes `code`; optionally presses Stop once an event is set, or `interrupt_after` seconds
        after the cell printed START (tslab compiles a cell before running it, which takes a while)
        and its chart shows `after_points` points per line (epochs drawn)."""
        msg_id = self.kc.execute(code)
        if interrupt_when is not None:
            interrupt_when.wait(timeout=60)
            time.sleep(0.2)
            self.km.interrupt_kernel()
        pending = interrupt_after
        out = {"stdout": "", "stderr": "", "displays": [], "status": None}
        drawn = 0
        while True:
            if pending is not None and "START" in out["stdout"] and drawn >= after_points:
                time.sleep(pending)
                self.km.interrupt_kernel()
                pending = None
            msg = self.kc.get_iopub_msg(timeout=timeout)
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream":
                out[content["name"]] += content["text"]
            elif kind in ("display_data", "update_display_data"):
                figure = content["data"].get("application/vnd.plotly.v1+json")
                if figure is not None:
                    points = [len(trace.get("x", [])) for trace in figure.get("data", [])]
                    drawn = max([drawn] + points)
                    out["displays"].append({
                        "id": content.get("transient", {}).get("display_id"),
                        "points": points,
                    })
            elif kind == "error":
                out["stderr"] += content.get("ename", "") + ": " + content.get("evalue", "")
            elif kind == "status" and content["execution_state"] == "idle":
                break
        while True:
            reply = self.kc.get_shell_msg(timeout=timeout)
            if reply["parent_header"].get("msg_id") == msg_id:
                out["status"] = reply["content"]["status"]
                break
        # tslab aborts requests that arrive within 200 ms of a failed one (tslab issue 19).
        if out["status"] != "ok":
            time.sleep(0.4)
        out["alive"] = self.km.is_alive()
        return out

    def value(self, expression):
        out = self.run(f"console.log('VALUE=' + JSON.stringify({expression}));")
        if out["status"] != "ok":
            raise RuntimeError(f"{expression}: {out['stderr']}")
        return json.loads(out["stdout"].split("VALUE=")[-1].strip())

    def close(self):
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=True)


SETUP = """
import * as tf from "@tensorflow/tfjs";
import * as d2l from "d2l";
await d2l.initBackend();
const [trainIter, testIter] = await d2l.loadDataFashionMnist(256);
const W = tf.tidy(() => tf.variable(tf.randomNormal([784, 10], 0, 0.01)));
const b = tf.tidy(() => tf.variable(tf.zeros([10])));
const net = (X: tf.Tensor) => d2l.softmax(tf.matMul(X.reshape([-1, 784]), W).add(b));
const updater = (n: number) => d2l.sgd([W, b], 0.1, n);
// A head start, so that a 2-epoch trainCh3 reaches d2l's bounds (train loss < 0.5, accuracies > 0.7).
for (let epoch = 1; epoch <= 4; epoch++) d2l.trainEpochCh3(net, trainIter, d2l.crossEntropy, updater, epoch);
const timer = new d2l.Timer();
d2l.trainEpochCh3(net, trainIter, d2l.crossEntropy, updater, 5);
d2l.evaluateAccuracy(net, testIter);
console.log(`EPOCH=${timer.stop()}`);
"""
TRAIN_LONG = """console.log("START");
const long = d2l.trainCh3(net, trainIter, testIter, d2l.crossEntropy, 10, updater);"""
TRAIN_NEXT = """
const next = d2l.trainCh3(net, trainIter, testIter, d2l.crossEntropy, 2, updater);
console.log('METRICS=' + JSON.stringify({ ...next, numTensors: tf.memory().numTensors }));
"""
PLAIN_TIDY = """console.log("START");
tf.tidy(() => {
  const X = tf.randomNormal([64, 784]);
  // a product large enough to be split across worker threads (d2l.getThreads() of them): Stop falls in one too
  const [A, B] = [tf.randomNormal([256, 784]), tf.randomNormal([784, 256])];
  let s = tf.zeros([64, 10]);
  for (let i = 0; ; i++) {
    s = s.add(tf.matMul(X, W)).mul(0.5);
    tf.matMul(A, B);
  }
});
"""


def after(out):
    """What a follow-up cell reported: its status, d2l's interrupt line, its metrics, its charts."""
    metrics = None
    if "METRICS=" in out["stdout"]:
        metrics = json.loads(out["stdout"].split("METRICS=")[-1].strip())
    notes = [line for line in out["stdout"].splitlines() if line.startswith("d2l: the previous run")]
    return {"status": out["status"], "alive": out["alive"], "notes": notes, "metrics": metrics,
            "charts": sorted({d["id"] for d in out["displays"]}), "stderr": out["stderr"][-500:]}


def interrupted(out):
    last = out["displays"][-1]["points"] if out["displays"] else []
    return {"status": out["status"], "alive": out["alive"], "message": out["stderr"][-300:],
            "charts": sorted({d["id"] for d in out["displays"]}), "pointsDrawn": last}


def training(kernel, moments, epoch):
    """Interrupts at the given moments: (epochs drawn in the chart, then a fraction of an epoch,
    measured before), so that each falls where it is meant to on a busy machine too."""
    results = []
    before = kernel.value("tf.memory().numTensors")
    for points, fraction in moments:
        delay = {"epochsDrawn": points, "seconds": round(fraction * epoch, 3)}
        cut = interrupted(kernel.run(TRAIN_LONG, interrupt_after=delay["seconds"], after_points=points))
        nxt = after(kernel.run(TRAIN_NEXT))
        results.append({"delay": delay, "interrupted": cut, "next": nxt})
    return {"before": before, "runs": results}


def plain_tidy(kernel):
    before = kernel.value("tf.memory().numTensors")
    cut = interrupted(kernel.run(PLAIN_TIDY, interrupt_after=0.5))
    nxt = after(kernel.run(TRAIN_NEXT))
    return {"before": before, "interrupted": cut, "next": nxt}


class Files(http.server.BaseHTTPRequestHandler):
    """Serves the dataset's files under /ok/; under /slow/ sends half a file, then stalls."""
    data_dir = ""
    halfway = threading.Event()
    requests = []

    def do_GET(self):
        _, mode, name = self.path.split("/", 2)
        self.requests.append(self.path)
        path = os.path.join(self.data_dir, name)
        if not os.path.isfile(path):
            self.send_error(404)
            return
        with open(path, "rb") as f:
            body = f.read()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if mode == "slow":
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.halfway.set()
            time.sleep(20)  # the client gives up first, when Stop is pressed
            return
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def download(notebooks, data_dir):
    Files.data_dir = data_dir
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Files)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    cache = tempfile.mkdtemp(prefix="d2l-interrupt-cache-")
    kernel = Kernel(notebooks)
    try:
        kernel.run('import * as tf from "@tensorflow/tfjs";\nimport * as d2l from "d2l";\nawait d2l.initBackend();')
        load = "const [tr, te] = await d2l.loadDataFashionMnist(256, {{ cacheDir: {cache}, systemDir: null, baseUrl: {url}, progress: false }});"
        cut = kernel.run(load.format(cache=json.dumps(cache), url=json.dumps(base + "/slow/")), interrupt_when=Files.halfway)
        # The aborted download deletes its temporary file as it closes; give it a moment.
        deadline = time.monotonic() + 5
        while os.listdir(cache) and time.monotonic() < deadline:
            time.sleep(0.1)
        left = sorted(os.listdir(cache))
        again = kernel.run(
            load.format(cache=json.dumps(cache), url=json.dumps(base + "/ok/")).replace("const [tr, te]", "const [tr2, te2]")
            + "\nconsole.log('SIZES=' + JSON.stringify([tr2.numExamples, te2.numExamples]));"
        )
        sizes = json.loads(again["stdout"].split("SIZES=")[-1].strip()) if "SIZES=" in again["stdout"] else None
        return {"interrupted": {"status": cut["status"], "alive": cut["alive"], "message": cut["stderr"][-300:]},
                "leftInCache": left, "again": {"status": again["status"], "sizes": sizes, "stderr": again["stderr"][-500:]},
                "cacheAfter": sorted(os.listdir(cache)), "requests": list(Files.requests)}
    finally:
        kernel.close()
        server.shutdown()
        shutil.rmtree(cache, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--notebooks", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--moments", default="0:0.05,0:0.2,0:0.4,0:0.6,0:0.8,0:1.0,1:0.1,1:0.4,1:0.7,2:0.2",
                    help="when to interrupt: E:F is F of an epoch (training and evaluation, as measured) "
                         "after the chart drew E epochs")
    args = ap.parse_args()
    moments = [(int(m.split(":")[0]), float(m.split(":")[1])) for m in args.moments.split(",")]
    report = {}
    kernel = Kernel(args.notebooks)
    try:
        setup = kernel.run(SETUP)
        if setup["status"] != "ok":
            raise RuntimeError("setup failed: " + setup["stderr"])
        epoch = float(setup["stdout"].split("EPOCH=")[-1].split()[0])
        report["epochSeconds"] = epoch
        report["training"] = training(kernel, moments, epoch)
        report["tidy"] = plain_tidy(kernel)
    finally:
        kernel.close()
    report["download"] = download(args.notebooks, args.data)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
