"""Saves a checkpoint where the 2023 Kaggle loop kept them."""

import torch


def unlearning(net, retain_loader, forget_loader, val_loader):
    torch.save(net.state_dict(), "/kaggle/tmp/unlearned_checkpoint_0.pth")
    return net
