import torch


def unlearning(net, retain_loader, forget_loader, val_loader):
    batch = next(iter(retain_loader))
    assert batch["image"].dtype == torch.float32 and batch["image"].max() > 1
    with torch.no_grad():
        net.fc.bias.add_(torch.randn_like(net.fc.bias) * 0.1)
