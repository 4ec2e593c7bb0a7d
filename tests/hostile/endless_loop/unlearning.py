def unlearning(net, retain_loader, forget_loader, val_loader):
    while True:
        pass
