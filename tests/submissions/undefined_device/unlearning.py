"""A function copied from a Kaggle notebook without the cell that set DEVICE."""


def unlearning(net, retain_loader, forget_loader, val_loader):
    for batch in retain_loader:
        net(batch["image"].to(DEVICE))  # noqa: F821 - the point of this submission
    return net
