#!/usr/bin/env python3
"""The PyTorch peer of `npm run bench -- --model kaggle`: d2l's own code of section 4.10 for the k-fold job.

The code below is d2l's (d2l-zh, chapter_multilayer-perceptrons/kaggle-house-price, PyTorch tab) as the book
runs it: pandas reads the two CSV files, standardizes the numeric columns over train and test together, sets
missing numbers to 0 and one-hot encodes the rest with a column for "missing" (331 features with pandas 1.x);
a linear layer trained with Adam on nn.MSELoss in minibatches from d2l.load_array (a DataLoader over a
TensorDataset); K-fold cross-validation with k 5, 100 epochs, lr 5, weight decay 0, batch 64. Only what d2l's
package would add is inlined (load_array) and the plot is left out; the timing starts before pandas and torch
are imported, as a learner's run of the notebook would pay for them.

OpenBLAS: this job's products are tiny (64x331 by 331x1); torch runs on --threads threads (default 1, the
fastest for small steps on a 2-core machine). Prints one JSON line: seconds (the whole job, imports and data
loading included), kfoldSeconds (the k-fold training alone), cpuSeconds, trainLogRmse, validLogRmse, features.

  /usr/bin/python3 scripts/peer/kaggle_torch.py --data-dir lib/data/kaggle-house
"""
import time

start = time.perf_counter()
cpu_start = time.process_time()

import argparse
import json
import os

import pandas as pd
import torch
from torch import nn
from torch.utils import data


def load_array(data_arrays, batch_size, is_train=True):
    """d2l.load_array: a PyTorch data iterator."""
    dataset = data.TensorDataset(*data_arrays)
    return data.DataLoader(dataset, batch_size, shuffle=is_train)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--epochs", type=int, default=100)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.seed is not None:
        torch.manual_seed(args.seed)

    train_data = pd.read_csv(os.path.join(args.data_dir, "kaggle_house_pred_train.csv"))
    test_data = pd.read_csv(os.path.join(args.data_dir, "kaggle_house_pred_test.csv"))
    all_features = pd.concat((train_data.iloc[:, 1:-1], test_data.iloc[:, 1:]))
    numeric_features = all_features.dtypes[all_features.dtypes != 'object'].index
    all_features[numeric_features] = all_features[numeric_features].apply(
        lambda x: (x - x.mean()) / (x.std()))
    all_features[numeric_features] = all_features[numeric_features].fillna(0)
    all_features = pd.get_dummies(all_features, dummy_na=True)
    n_train = train_data.shape[0]
    train_features = torch.tensor(all_features[:n_train].values.astype('float32'), dtype=torch.float32)
    train_labels = torch.tensor(train_data.SalePrice.values.reshape(-1, 1), dtype=torch.float32)

    loss = nn.MSELoss()
    in_features = train_features.shape[1]

    def get_net():
        return nn.Sequential(nn.Linear(in_features, 1))

    def log_rmse(net, features, labels):
        clipped_preds = torch.clamp(net(features), 1, float('inf'))
        rmse = torch.sqrt(loss(torch.log(clipped_preds), torch.log(labels)))
        return rmse.item()

    def train(net, train_features, train_labels, test_features, test_labels,
              num_epochs, learning_rate, weight_decay, batch_size):
        train_ls, test_ls = [], []
        train_iter = load_array((train_features, train_labels), batch_size)
        optimizer = torch.optim.Adam(net.parameters(), lr=learning_rate, weight_decay=weight_decay)
        for epoch in range(num_epochs):
            for X, y in train_iter:
                optimizer.zero_grad()
                l = loss(net(X), y)
                l.backward()
                optimizer.step()
            train_ls.append(log_rmse(net, train_features, train_labels))
            if test_labels is not None:
                test_ls.append(log_rmse(net, test_features, test_labels))
        return train_ls, test_ls

    def get_k_fold_data(k, i, X, y):
        assert k > 1
        fold_size = X.shape[0] // k
        X_train, y_train = None, None
        for j in range(k):
            idx = slice(j * fold_size, (j + 1) * fold_size)
            X_part, y_part = X[idx, :], y[idx]
            if j == i:
                X_valid, y_valid = X_part, y_part
            elif X_train is None:
                X_train, y_train = X_part, y_part
            else:
                X_train = torch.cat([X_train, X_part], 0)
                y_train = torch.cat([y_train, y_part], 0)
        return X_train, y_train, X_valid, y_valid

    def k_fold(k, X_train, y_train, num_epochs, learning_rate, weight_decay, batch_size):
        train_l_sum, valid_l_sum = 0, 0
        for i in range(k):
            data = get_k_fold_data(k, i, X_train, y_train)
            net = get_net()
            train_ls, valid_ls = train(net, *data, num_epochs, learning_rate, weight_decay, batch_size)
            train_l_sum += train_ls[-1]
            valid_l_sum += valid_ls[-1]
        return train_l_sum / k, valid_l_sum / k

    k, num_epochs, lr, weight_decay, batch_size = 5, args.epochs, 5, 0, 64
    kfold_start = time.perf_counter()
    train_l, valid_l = k_fold(k, train_features, train_labels, num_epochs, lr, weight_decay, batch_size)
    end = time.perf_counter()
    print(json.dumps({
        "backend": "torch", "torch": torch.__version__, "pandas": pd.__version__, "threads": args.threads,
        "features": in_features, "seconds": end - start, "kfoldSeconds": end - kfold_start,
        "cpuSeconds": time.process_time() - cpu_start, "trainLogRmse": train_l, "validLogRmse": valid_l,
    }))


if __name__ == "__main__":
    main()
