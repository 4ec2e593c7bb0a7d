import torchvision


def unlearning(net, retain_loader, forget_loader, val_loader):
    return torchvision.models.resnet34(num_classes=10)
