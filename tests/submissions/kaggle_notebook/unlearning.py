"""A notebook carried over from the 2023 Kaggle edition: the usual imports at the top,
a DEVICE global, dict batches; it prints what the harness handed it (FACTS line)."""

import sys

PRELOADED = sorted(name for name in ("pandas", "sklearn.linear_model", "matplotlib.pyplot") if name in sys.modules)

import json  # noqa: E402 - after PRELOADED, which must see the imports the platform did before this file's
import os  # noqa: E402
import tempfile  # noqa: E402

import matplotlib  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import scipy.stats  # noqa: E402
import torch  # noqa: E402
from sklearn import linear_model, model_selection  # noqa: E402
from torch import nn, optim  # noqa: E402
from torchvision.models import resnet18  # noqa: E402,F401 - imported by every Kaggle notebook
from tqdm.auto import tqdm  # noqa: E402

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def _loader_facts(loader):
    return {
        "batch_size": loader.batch_size,
        "drop_last": loader.drop_last,
        "num_workers": loader.num_workers,
        "sampler": type(loader.sampler).__name__,
        "has_own_generator": loader.generator is not None,
    }


def _image_ids(loader):
    return [int(i) for batch in loader for i in batch["image_id"]]


def _writable(folder):
    with tempfile.NamedTemporaryFile(dir=folder) as f:
        f.write(b"x")
    return True


def unlearning(net, retain_loader, forget_loader, val_loader):
    batch = next(iter(retain_loader))
    torch.manual_seed(0)
    first = _image_ids(retain_loader)
    torch.manual_seed(0)
    again = _image_ids(retain_loader)
    facts = {
        "training": net.training and all(m.training for m in net.modules()),
        "device_is_DEVICE": next(net.parameters()).device.type == DEVICE,
        "requires_grad": all(p.requires_grad for p in net.parameters()),
        "grads_are_none": all(p.grad is None for p in net.parameters()),
        "param_dtypes": sorted({str(p.dtype) for p in net.parameters()}),
        "grad_enabled": torch.is_grad_enabled(),
        "batch_keys": list(batch),
        "batch_dtypes": {key: str(value.dtype) for key, value in batch.items()},
        "batch_devices": sorted({value.device.type for value in batch.values()}),
        "image_range": [float(batch["image"].min()), float(batch["image"].max())],
        "loaders": [_loader_facts(loader) for loader in (retain_loader, forget_loader, val_loader)],
        "manual_seed_fixes_order": first == again,
        "shuffled": first != sorted(first),
        "cwd_is_home": os.getcwd() == os.environ["HOME"],
        "writable": [_writable(os.getcwd()), _writable(os.environ["TMPDIR"]), _writable(tempfile.gettempdir())],
        "packages": [pd.__version__, matplotlib.__version__, np.__version__],
        "preloaded": PRELOADED,
    }

    # A little of what such notebooks do: per-example losses in a DataFrame, a logistic
    # regression on them, one fine-tuning pass over a few retain batches.
    criterion = nn.CrossEntropyLoss(reduction="none")
    with torch.no_grad():
        losses = criterion(net(batch["image"].to(DEVICE)), batch["age_group"].to(DEVICE)).cpu().numpy()
    frame = pd.DataFrame({"loss": losses, "label": batch["age_group"].numpy()})
    members = (frame["loss"] < frame["loss"].median()).astype(int)
    scores = model_selection.cross_val_score(linear_model.LogisticRegression(), frame[["loss"]], members, cv=2)
    facts["mia_scores_finite"] = bool(np.isfinite(scores).all() and np.isfinite(scipy.stats.zscore(losses)).all())
    plt.hist(frame["loss"], bins=10)
    plt.savefig("losses.png")
    plt.close("all")

    optimizer = optim.SGD(net.parameters(), lr=1e-3, momentum=0.9, weight_decay=5e-4)
    net.train()
    for step, sample in enumerate(tqdm(retain_loader, disable=True)):
        if step == 3:
            break
        optimizer.zero_grad()
        nn.CrossEntropyLoss()(net(sample["image"].to(DEVICE)), sample["age_group"].to(DEVICE)).backward()
        optimizer.step()
    net.eval()
    print("FACTS " + json.dumps(facts, sort_keys=True))
    return net
