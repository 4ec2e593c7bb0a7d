import time


def unlearning(net, retain_loader, forget_loader, val_loader):
    time.sleep(3)
    return net
