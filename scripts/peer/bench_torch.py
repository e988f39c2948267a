#!/usr/bin/env python3
"""The PyTorch peer of `npm run bench`: the same job, written for speed by someone who knows PyTorch.

Not part of the project's library or of `npm test`; `npm run bench -- --peer` runs it alternately
with d2l-ts's own run of the job and prints both times and their ratio. It is not d2l's own code
(that uses a DataLoader with worker processes and is ~10-20x slower here): the four Fashion-MNIST
files are decoded once into tensors, each epoch's batches are index slices of a shuffled
permutation, the loss is F.cross_entropy on the logits, the metrics stay tensors until one
`.item()` per epoch, and PyTorch runs on `--threads` threads (1 is fastest on a 2-core machine
whose two vCPUs share one core's vector units).

Jobs (batch 256, lr 0.1, SGD, weights ~ N(0, 0.01^2), zero biases, as d2l 3.6/3.7 and 4.2/4.3):
  softmax: Flatten -> Linear(784, 10)
  mlp:     Flatten -> Linear(784, 256) -> ReLU -> Linear(256, 10)
  lenet:   d2l 6.6's LeNet (lr 0.9): Conv2d(1, 6, 5, padding 2) -> Sigmoid -> AvgPool2d(2, 2) -> Conv2d(6, 16, 5)
           -> Sigmoid -> AvgPool2d(2, 2) -> Flatten -> Linear(400, 120) -> Sigmoid -> Linear(120, 84) -> Sigmoid
           -> Linear(84, 10); Xavier uniform weights (d2l's init_weights), zero biases (as d2l-ts's); the rows of
           784 pixels are unflattened to 1x28x28 images by the net's first module

Prints one JSON line like npm run bench --json: backend "torch", secondsPerEpoch (the median over
the epochs after the first; an epoch is training and the test accuracy), cpuSecondsPerEpoch (the
process's CPU time likewise), totalSeconds, accuracies.

  python3 scripts/peer/bench_torch.py --job mlp --data-dir /usr/share/datasets/fashion-mnist
"""
import argparse
import gzip
import json
import os
import statistics
import struct
import time

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F


def read_idx_gz(path):
    """An idx file (images or labels) as a numpy array of uint8."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = struct.unpack(">" + "I" * dims, data[4 : 4 + 4 * dims])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def load(data_dir, prefix):
    images = read_idx_gz(os.path.join(data_dir, f"{prefix}-images-idx3-ubyte.gz"))
    labels = read_idx_gz(os.path.join(data_dir, f"{prefix}-labels-idx1-ubyte.gz"))
    X = torch.from_numpy(images.astype(np.float32) / 255.0).reshape(-1, 784)
    y = torch.from_numpy(labels.astype(np.int64))
    return X, y


def make_net(job):
    if job == "lenet":
        net = nn.Sequential(
            nn.Unflatten(1, (1, 28, 28)),
            nn.Conv2d(1, 6, kernel_size=5, padding=2), nn.Sigmoid(), nn.AvgPool2d(kernel_size=2, stride=2),
            nn.Conv2d(6, 16, kernel_size=5), nn.Sigmoid(), nn.AvgPool2d(kernel_size=2, stride=2),
            nn.Flatten(), nn.Linear(16 * 5 * 5, 120), nn.Sigmoid(), nn.Linear(120, 84), nn.Sigmoid(), nn.Linear(84, 10))
        for m in net:
            if isinstance(m, (nn.Linear, nn.Conv2d)):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
        return net
    if job == "softmax":
        net = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    else:
        net = nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10))
    for m in net:
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=0.01)
            nn.init.zeros_(m.bias)
    return net


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--job", choices=["softmax", "mlp", "lenet"], default="softmax")
    parser.add_argument("--data-dir", default="/usr/share/datasets/fashion-mnist")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    start = time.perf_counter()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    load_start = time.perf_counter()
    X_train, y_train = load(args.data_dir, "train")
    X_test, y_test = load(args.data_dir, "t10k")
    load_seconds = time.perf_counter() - load_start

    net = make_net(args.job)
    trainer = torch.optim.SGD(net.parameters(), lr=args.lr)
    n = X_train.shape[0]
    seconds, cpu_seconds = [], []
    for _ in range(args.epochs):
        t0, c0 = time.perf_counter(), time.process_time()
        net.train()
        loss_sum = torch.zeros(())
        correct = torch.zeros((), dtype=torch.int64)
        for idx in torch.randperm(n).split(args.batch_size):
            X, y = X_train[idx], y_train[idx]
            logits = net(X)
            loss = F.cross_entropy(logits, y)
            trainer.zero_grad(set_to_none=True)
            loss.backward()
            trainer.step()
            with torch.no_grad():
                loss_sum += loss.detach() * len(idx)
                correct += (logits.argmax(1) == y).sum()
        net.eval()
        with torch.no_grad():
            test_correct = (net(X_test).argmax(1) == y_test).sum()
        # one synchronisation point an epoch: the metrics leave their tensors here
        train_loss, train_acc, test_acc = loss_sum.item() / n, correct.item() / n, test_correct.item() / len(y_test)
        seconds.append(time.perf_counter() - t0)
        cpu_seconds.append(time.process_time() - c0)

    print(json.dumps({
        "backend": "torch",
        "torch": torch.__version__,
        "threads": args.threads,
        "job": args.job,
        "epochs": args.epochs,
        "batchSize": args.batch_size,
        "lr": args.lr,
        "loadSeconds": load_seconds,
        "secondsPerEpoch": statistics.median(seconds[1:] if len(seconds) > 1 else seconds),
        "cpuSecondsPerEpoch": statistics.median(cpu_seconds[1:] if len(cpu_seconds) > 1 else cpu_seconds),
        "totalSeconds": time.perf_counter() - start,
        "trainLoss": train_loss,
        "trainAccuracy": train_acc,
        "testAccuracy": test_acc,
    }))


if __name__ == "__main__":
    main()
