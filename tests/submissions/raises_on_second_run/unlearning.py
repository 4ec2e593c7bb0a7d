import torch


def unlearning(net, retain_loader, forget_loader, val_loader):
    # The ingestion seeds torch with 1_000_000 + run index before each call.
    if torch.initial_seed() == 1_000_001:
        raise RuntimeError("deliberate failure in the second run")
    return net
